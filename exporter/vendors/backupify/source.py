"""Legacy Backupify v1: which calls a crawl makes, and how their answers become records.

Two ways to find the instances, picked on every crawl by whether the server offers
``/v1/customers`` (the answer, even a 404, is cached like any other):

- **by customer** (the swagger, the live API): ``/v1/customers`` is the customer list; reading
  one customer reads its
  ``/v1/customers/{id}/backup_instances`` -> the distinct ``backup_definition_id`` of those
  instances -> ``/v1/backup_definitions/{id}`` for their names (cached for an hour: names change
  rarely). This finds exactly our own definitions without ``/v1/vendors/me``, which would hand
  back our client secret and is never called. A customer whose instance list fails is marked
  down on its own.
- **by definition** (the spec shape: ``/v1/customers`` answers 404): ``/v1/backup_definitions``
  (every vendor's) -> ``/v1/backup_instances?backup_definition_id=``, all read for the customer
  list, grouped by the customer each instance names; another vendor's definition answers 404
  there, which means "none of ours", not a failure.

``backup_definition_ids``, when set, limits both ways to those definitions. Then, per instance of
the customer being read:
``backups/active`` (204: nothing runs), the newest finished backup from the tail of
``backups``, and the exports started within ``restore_window_seconds`` from the tail of
``exports``. Exports come whole in their list, so there is no per-export read for remembering
finished ones to save; the cached list is what is reused.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import httpx

from exporter.http import ApiStats
from exporter.model import (
    UNKNOWN,
    BackupInstance,
    BackupRun,
    Customer,
    RestoreJob,
    Snapshot,
    customer_status,
    snake_case,
)
from exporter.parsing import first_by_id
from exporter.source import FetchError, Listing, Part, Reading, Store, read_root
from exporter.vendors.backupify.api import BackupifyApi
from exporter.vendors.backupify.parse import (
    ExportRecord,
    InstanceRecord,
    backup_interval,
    backup_status,
    in_window,
)
from exporter.vendors.backupify.settings import BackupifySettings

logger = logging.getLogger(__name__)

EXPORT: Final = "export"


@dataclass(frozen=True, slots=True)
class _Listed:
    """An instance as listed, with the customer it belongs to and its definition's name."""

    record: InstanceRecord
    customer_id: str
    definition: str


@dataclass(frozen=True, slots=True)
class _InstanceData:
    active: BackupRun | None
    finished: BackupRun | None
    jobs: tuple[RestoreJob, ...]
    reading: Reading


@dataclass(frozen=True)
class _Unit:
    """A customer as the crawl's root lists it: its name from /v1/customers, or (the
    definition path) its instances, which that path reads for the listing already."""

    customer_id: str
    name: str | None
    listed: list[_Listed] | None = None


class BackupifySource:
    vendor = "backupify"

    def __init__(
        self,
        settings: BackupifySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.name
        self.stats = ApiStats()
        self._settings = settings
        self._clock = clock
        self.api = BackupifyApi(settings, self.stats, transport=transport)
        self.pacer = self.api.client.pacer
        self.tokens = self.api.tokens
        # The instances each customer had when last read: what the per-instance entries of
        # the cache are pruned to when customers leave.
        self._instances_of: dict[str, set[str]] = {}

    async def aclose(self) -> None:
        await self.api.aclose()

    def _wanted(self, record: InstanceRecord) -> bool:
        ids = self._settings.backup_definition_ids
        return ids is None or record.definition_id in ids

    async def listing(self, store: Store) -> Listing[_Unit]:
        # The root of the crawl: when it cannot be read, the crawl fails and the last good
        # parts stay beside up=0.
        customers, reading = await read_root(
            store, "customer list", "customers", self.api.customers
        )
        if customers is None:
            units = await self._by_definition(store, reading)
        else:
            units = {c.id: _Unit(c.id, c.name) for c in customers if c.id is not None}
            store.retain("customer_instances", units)
        for customer_id in [c for c in self._instances_of if c not in units]:
            del self._instances_of[customer_id]
        known = set().union(*self._instances_of.values())
        for endpoint in ("active_backup", "backups", "exports"):
            store.retain(endpoint, known)
        return reading.listing(units, {cid: unit.name for cid, unit in units.items()})

    async def _by_definition(self, store: Store, reading: Reading) -> dict[str, _Unit]:
        """The spec shape: every definition's instances, grouped by the customer they name."""
        definitions = await reading.fetch_required(
            "definitions", "definitions", "", self.api.definitions
        )
        ids = [d.id for d in definitions.value if d.id is not None]
        store.retain("instances", ids)
        listed: dict[str, str] = {d.id: d.name for d in definitions.value if d.id and d.name}
        # Configured ids come without names: ask for them like the customer path does.
        names = await self._definition_names(store, {i for i in ids if i not in listed})
        names.update(listed)
        units: dict[str, _Unit] = {}
        # One at a time: a failing list (other than another vendor's 404) fails the crawl, and
        # the next definitions are not asked in vain.
        for definition_id in ids:
            got = await reading.fetch_required(
                "instances",
                "instances",
                definition_id,
                functools.partial(self.api.definition_instances, definition_id),
            )
            for record in got.value:
                cid = record.customer_id or f"instance-{record.id}"
                unit = units.setdefault(cid, _Unit(cid, None, []))
                assert unit.listed is not None
                unit.listed.append(_Listed(record, cid, names.get(definition_id, definition_id)))
        return units

    async def read(self, store: Store, customer_id: str, unit: _Unit) -> Part:
        reading = Reading(store)
        listed = unit.listed
        if listed is None:
            got = await reading.fetch(
                "backup instances",
                "customer_instances",
                customer_id,
                functools.partial(self.api.customer_instances, customer_id),
            )
            wanted = [r for r in got.value if self._wanted(r)] if got is not None else []
            if got is not None and not wanted and self._settings.backup_definition_ids:
                # None of the configured definitions: not ours to show (as on the definition
                # path). One whose list could not be read is, with its error.
                return reading.part(customer_id, Snapshot())
            names = await self._definition_names(store, {r.definition_id for r in wanted})
            listed = [
                _Listed(
                    r, customer_id, names.get(r.definition_id or "", r.definition_id or UNKNOWN)
                )
                for r in wanted
            ]
        # An instance listed twice is one instance: never two series.
        listed = first_by_id(listed, lambda item: item.record.id)
        # The name is a "vendor provided ID": shown exactly as given.
        customer = (
            Customer(customer_id, unit.name or customer_id, "", UNKNOWN, UNKNOWN)
            if unit.name is not None or unit.listed is None
            else None
        )
        infos: list[BackupInstance] = []
        for item in listed:
            record = item.record
            assert record.id is not None
            if customer is None or customer.product == UNKNOWN:
                customer = _described(customer, item)
            infos.append(
                BackupInstance(
                    customer_id,
                    record.id,
                    # The swagger's instances have no name: the definition's names them.
                    record.name or item.definition,
                    item.definition,
                    last_success=record.last_success,
                    backup_interval=backup_interval(record.backup_frequency),
                )
            )
        self._instances_of[customer_id] = {i.instance_id for i in infos}
        results = await asyncio.gather(
            *(self._instance(store, customer_id, i.instance_id) for i in infos)
        )
        jobs: dict[str, RestoreJob] = {}
        for result in results:
            reading.merge(result.reading)
            for job in result.jobs:
                # Export ids are the vendor's own and unique; a repeat would be a duplicate
                # series, so the first one seen stands.
                jobs.setdefault(job.job_id, job)
        records = Snapshot(
            customers=(customer,) if customer is not None else (),
            instances=tuple(infos),
            active_backups=tuple(r.active for r in results if r.active is not None),
            finished_backups=tuple(r.finished for r in results if r.finished is not None),
            restore_jobs=tuple(jobs.values()),
        )
        return reading.part(customer_id, records)

    async def _definition_names(self, store: Store, ids: Iterable[str | None]) -> dict[str, str]:
        """Definition names by id. A name that cannot be read shows as the id and fails
        nothing: it is a label, not backup health; nor does its age count towards the
        customer's (names are cached longer than the data)."""
        wanted = sorted(i for i in ids if i)

        async def one(definition_id: str) -> str | None:
            try:
                got = await store.fetch(
                    "definition",
                    definition_id,
                    functools.partial(self.api.definition, definition_id),
                )
            except FetchError as exc:
                logger.info(
                    "msg=%s definition_id=%s reason=%s",
                    "definition name unavailable",
                    definition_id,
                    exc.reason,
                )
                if exc.stale is None:
                    return None
                got = exc.stale
            name = got.value.name
            return name if isinstance(name, str) and name else None

        found = await asyncio.gather(*(one(i) for i in wanted))
        return {i: name for i, name in zip(wanted, found, strict=True) if name}

    async def _instance(self, store: Store, customer_id: str, instance_id: str) -> _InstanceData:
        reading = Reading(store)
        since = self._clock() - self._settings.restore_window_seconds
        active = await reading.fetch(
            "active backup",
            "active_backup",
            instance_id,
            functools.partial(self.api.active, instance_id),
        )
        finished = await reading.fetch(
            "backups",
            "backups",
            instance_id,
            functools.partial(self.api.newest_finished, instance_id),
        )
        exports = await reading.fetch(
            "exports",
            "exports",
            instance_id,
            functools.partial(self.api.exports, instance_id, since),
        )
        run = done = None
        if active is not None and active.value is not None:
            record = active.value
            run = BackupRun(
                customer_id, instance_id, record.started_at, None, backup_status(record.status)
            )
        if finished is not None and finished.value is not None:
            record = finished.value
            done = BackupRun(
                customer_id,
                instance_id,
                record.started_at,
                record.finished_at,
                backup_status(record.status),
            )
        jobs: tuple[RestoreJob, ...] = ()
        if exports is not None:
            # Filtered again: a cached list was cut against an earlier window start.
            jobs = tuple(_job(customer_id, e) for e in exports.value if in_window(e, since))
        return _InstanceData(run, done, jobs, reading)


def _described(customer: Customer | None, item: _Listed) -> Customer:
    """A customer as its first instance describes it: the product is the instance's definition
    (Google Apps, Office 365). A spec-shaped instance also carries the customer's status, and its
    name when /v1/customers gave none."""
    record = item.record
    name = customer.name if customer is not None else None
    return Customer(
        id=item.customer_id,
        name=name or record.customer_name or record.name or item.customer_id,
        domain="",
        product=snake_case(item.definition),
        # The swagger's instances have no status of their own.
        status=customer_status(record.status) if record.status else UNKNOWN,
    )


def _job(customer_id: str, export: ExportRecord) -> RestoreJob:
    assert export.id is not None
    return RestoreJob(
        job_id=export.id,
        customer_id=customer_id,
        kind=EXPORT,
        status=backup_status(export.status),
        started=export.started_at,
        ended=export.ended_at,
        records_processed=export.records_processed,
        records_failed=export.records_failed,
    )

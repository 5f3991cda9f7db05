"""Legacy Backupify v1: which calls a refresh makes, and how their answers become records.

Two ways to find the instances, picked on every refresh by whether the server offers
``/v1/customers`` (the answer, even a 404, is cached like any other):

- **by customer** (the swagger, the live API): ``/v1/customers`` -> each customer's
  ``/v1/customers/{id}/backup_instances`` -> the distinct ``backup_definition_id`` of those
  instances -> ``/v1/backup_definitions/{id}`` for their names (cached for an hour: names change
  rarely). This finds exactly our own definitions without ``/v1/vendors/me``, which would hand
  back our client secret and is never called. A customer whose instance list fails is marked
  down on its own.
- **by definition** (the spec shape: ``/v1/customers`` answers 404): ``/v1/backup_definitions``
  (every vendor's) -> ``/v1/backup_instances?backup_definition_id=``; another vendor's
  definition answers 404 there, which means "none of ours", not a failure.

``backup_definition_ids``, when set, limits both ways to those definitions. Then, per instance:
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
from dataclasses import dataclass, field
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
from exporter.source import Fetched, FetchError, Reading, Store
from exporter.vendors.backupify.api import BackupifyApi
from exporter.vendors.backupify.parse import (
    CustomerRecord,
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
    error: str | None
    oldest: float


@dataclass
class _Crawl:
    """What one refresh has gathered so far."""

    customers: dict[str, Customer] = field(default_factory=dict)
    listed: list[_Listed] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)
    oldest: float = float("inf")

    def saw(self, fetched_at: float) -> None:
        self.oldest = min(self.oldest, fetched_at)

    def problem(self, customer_id: str, reason: str | None) -> None:
        if reason:
            self.problems.setdefault(customer_id, []).append(reason)


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
        self.tokens = self.api.tokens

    async def aclose(self) -> None:
        await self.api.aclose()

    def _wanted(self, record: InstanceRecord) -> bool:
        ids = self._settings.backup_definition_ids
        return ids is None or record.definition_id in ids

    async def collect(self, store: Store) -> Snapshot:
        # The root of the crawl: when it cannot be read, the refresh fails and the runner keeps
        # serving the last good snapshot beside up=0.
        customers = await store.fetch("customers", "", self.api.customers)
        crawl = _Crawl()
        crawl.saw(customers.fetched_at)
        if customers.value is None:
            await self._by_definition(store, crawl)
        else:
            await self._by_customer(store, crawl, customers.value)
        return await self._finish(store, crawl)

    async def _by_customer(
        self, store: Store, crawl: _Crawl, customers: list[CustomerRecord]
    ) -> None:
        async def instances(cid: str) -> tuple[Reading, Fetched[list[InstanceRecord]] | None]:
            reading = Reading(store, self._clock)
            got = await reading.fetch(
                "backup instances",
                "customer_instances",
                cid,
                functools.partial(self.api.customer_instances, cid),
            )
            return reading, got

        ids = [c.id for c in customers if c.id is not None]
        store.retain("customer_instances", ids)
        lists = await asyncio.gather(*(instances(cid) for cid in ids))
        records: list[tuple[str, InstanceRecord]] = []
        # With backup_definition_ids set, a customer with none of those is not ours to show
        # (as on the definition path); one whose list could not be read is, with its error.
        skipped: set[str] = set()
        for cid, (reading, got) in zip(ids, lists, strict=True):
            crawl.problem(cid, reading.error)
            crawl.saw(reading.oldest)
            if got is not None:
                wanted = [(cid, r) for r in got.value if self._wanted(r)]
                records.extend(wanted)
                if not wanted and self._settings.backup_definition_ids is not None:
                    skipped.add(cid)
        names = await self._definition_names(store, {r.definition_id for _, r in records})
        for customer in customers:
            assert customer.id is not None
            if customer.id in skipped:
                continue
            # The name is a "vendor provided ID": shown exactly as given.
            crawl.customers[customer.id] = Customer(
                customer.id, customer.name or customer.id, "", UNKNOWN, UNKNOWN
            )
        for cid, instance in records:
            # An instance names its customer; trust that over the list it came in.
            owner = instance.customer_id or cid
            definition = instance.definition_id
            name = names.get(definition or "", definition or UNKNOWN)
            crawl.listed.append(_Listed(instance, owner, name))

    async def _by_definition(self, store: Store, crawl: _Crawl) -> None:
        definitions = await store.fetch("definitions", "", self.api.definitions)
        crawl.saw(definitions.fetched_at)
        ids = [d.id for d in definitions.value if d.id is not None]
        store.retain("instances", ids)
        listed: dict[str, str] = {d.id: d.name for d in definitions.value if d.id and d.name}
        # Configured ids come without names: ask for them like the customer path does.
        names = await self._definition_names(store, {i for i in ids if i not in listed})
        names.update(listed)
        # One at a time, as before: a failing list (other than another vendor's 404) fails the
        # refresh, and the next definitions are not asked in vain.
        for definition_id in ids:
            got = await store.fetch(
                "instances",
                definition_id,
                functools.partial(self.api.definition_instances, definition_id),
            )
            crawl.saw(got.fetched_at)
            for record in got.value:
                cid = record.customer_id or f"instance-{record.id}"
                crawl.listed.append(_Listed(record, cid, names.get(definition_id, definition_id)))

    async def _definition_names(self, store: Store, ids: Iterable[str | None]) -> dict[str, str]:
        """Definition names by id. A name that cannot be read shows as the id and fails
        nothing: it is a label, not backup health. Their fetch times are left out of the
        snapshot's age for the same reason (they are cached longer than the data)."""
        wanted = sorted(i for i in ids if i)
        store.retain("definition", wanted)

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
        reading = Reading(store, self._clock)
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
        return _InstanceData(run, done, jobs, reading.error, reading.oldest)

    async def _finish(self, store: Store, crawl: _Crawl) -> Snapshot:
        infos: list[BackupInstance] = []
        for item in crawl.listed:
            record = item.record
            assert record.id is not None
            customer = crawl.customers.get(item.customer_id)
            if customer is None or customer.product == UNKNOWN:
                crawl.customers[item.customer_id] = _described(customer, item)
            infos.append(
                BackupInstance(
                    item.customer_id,
                    record.id,
                    # The swagger's instances have no name: the definition's names them.
                    record.name or item.definition,
                    item.definition,
                    last_success=record.last_success,
                    backup_interval=backup_interval(record.backup_frequency),
                )
            )
        ids = {i.instance_id for i in infos}
        for endpoint in ("active_backup", "backups", "exports"):
            store.retain(endpoint, ids)
        results = await asyncio.gather(
            *(self._instance(store, i.customer_id, i.instance_id) for i in infos)
        )
        jobs: dict[str, RestoreJob] = {}
        for info, result in zip(infos, results, strict=True):
            crawl.problem(info.customer_id, result.error)
            crawl.saw(result.oldest)
            for job in result.jobs:
                # Export ids are the vendor's own and unique; a repeat would be a duplicate
                # series, so the first one seen stands.
                jobs.setdefault(job.job_id, job)
        return Snapshot(
            customers=tuple(crawl.customers.values()),
            instances=tuple(infos),
            active_backups=tuple(r.active for r in results if r.active is not None),
            finished_backups=tuple(r.finished for r in results if r.finished is not None),
            restore_jobs=tuple(jobs.values()),
            customer_errors={cid: "; ".join(p) for cid, p in crawl.problems.items()},
            oldest_data=min(crawl.oldest, self._clock()),
        )


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

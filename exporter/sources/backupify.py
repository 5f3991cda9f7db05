"""Legacy Backupify v1: running backups and the newest finished backup of each backup instance.

The v1 API publishes no response schemas. The shapes assumed here (documented in the README):

- ``POST /oauth/token`` (form, client credentials) -> ``{access_token, expires_in, token_type}``
- lists (``/v1/backup_definitions``, ``/v1/backup_instances?backup_definition_id=``,
  ``/v1/backup_instances/{id}/backups``): a bare array or ``{<name>|data|items: [...]}``, 20 per
  page in ascending id order, paged with RFC 8288 ``Link`` headers
- a definition: ``id``, ``name``
- an instance: ``id``, ``customer_id``, ``customer_name`` or ``name``, ``status`` or ``state``
- a backup: ``id``, ``status`` or ``state``, ``started_at`` or ``created_at``,
  ``finished_at`` or ``completed_at``
- ``/v1/backup_instances/{id}/backups/active``: a backup, or 404 / an empty body when none runs
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import AliasChoices, Field

from exporter.cache import Cached, EndpointCache, FetchError
from exporter.config import BackupifySourceConfig
from exporter.http import (
    ApiStats,
    BearerAuth,
    Token,
    TokenCache,
    VendorClient,
    VendorError,
    list_items,
)
from exporter.model import (
    TERMINAL_STATUSES,
    UNKNOWN,
    BackupInstance,
    BackupRun,
    Customer,
    Snapshot,
    backup_status,
    customer_status,
    snake_case,
)
from exporter.sources._parse import Problems, Text, Timestamp, VendorModel, parse_records

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME: Final = 3600.0
# Only the last pages of an instance's backup list are read: it is in ascending id order.
MAX_BACKWARD_PAGES: Final = 3


def _alias(*names: str) -> Any:
    return Field(None, validation_alias=AliasChoices(*names))


class DefinitionRecord(VendorModel):
    id: Text = None
    name: Text = _alias("name", "description")


class InstanceRecord(VendorModel):
    id: Text = None
    customer_id: Text = _alias("customer_id", "customerId")
    customer_name: Text = _alias("customer_name", "customerName")
    name: Text = None
    status: Text = _alias("status", "state")


class BackupRecord(VendorModel):
    id: Text = None
    status: Text = _alias("status", "state")
    started_at: Timestamp = _alias("started_at", "created_at", "start_time")
    finished_at: Timestamp = _alias("finished_at", "completed_at", "ended_at", "end_time")


def _id_order(record: BackupRecord) -> tuple[int, float, str]:
    raw = record.id or ""
    return (int(raw) if raw.isdigit() else -1, record.started_at or 0.0, raw)


def newest_finished(records: list[BackupRecord]) -> BackupRecord | None:
    finished = [
        r
        for r in records
        if r.finished_at is not None or backup_status(r.status) in TERMINAL_STATUSES
    ]
    return max(finished, key=_id_order, default=None)


def parse_active(body: Any, problems: Problems) -> BackupRecord | None:
    if not body:
        return None
    if isinstance(body, dict) and isinstance(body.get("backup"), dict):
        body = body["backup"]
    records = parse_records([body], BackupRecord, problems, "backups/active")
    return records[0] if records else None


@dataclass(frozen=True, slots=True)
class _InstanceData:
    active: BackupRun | None
    finished: BackupRun | None
    error: str | None
    oldest: float


class BackupifySource:
    provider = "backupify"

    def __init__(
        self,
        config: BackupifySourceConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self.stats = ApiStats()
        self._config = config
        self._clock = clock
        self._limit = asyncio.Semaphore(config.max_concurrency)
        self.tokens = TokenCache(self._fetch_token, config.token_margin_seconds)
        self._client = VendorClient.for_source(
            config, auth=BearerAuth(self.tokens), stats=self.stats, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch_token(self, _: Token | None) -> Token:
        assert self._config.client_secret is not None  # the config validator guarantees it
        form = {
            "grant_type": "client_credentials",
            "client_id": self._config.client_id,
            "client_secret": self._config.client_secret.get_secret_value(),
        }
        if self._config.scope:
            form["scope"] = self._config.scope
        reply = await self._client.request(
            "token", "POST", "/oauth/token", data=form, authenticated=False
        )
        body = reply.body if isinstance(reply.body, dict) else {}
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise VendorError("POST /oauth/token: no access_token in the response")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return Token(token, time.monotonic() + float(lifetime))

    async def _list(self, endpoint: str, path: str, key: str, params: Any = None) -> list[Any]:
        async with self._limit:
            return await self._client.get_linked(
                endpoint, path, params, max_pages=self._config.max_pages, items_key=key
            )

    async def _load_definitions(self) -> list[DefinitionRecord]:
        if self._config.backup_definition_ids is not None:
            return [DefinitionRecord(id=i) for i in self._config.backup_definition_ids]
        items = await self._list("definitions", "/v1/backup_definitions", "backup_definitions")
        problems = Problems(self.stats)
        return parse_records(items, DefinitionRecord, problems, "definitions", lambda r: bool(r.id))

    async def _load_instances(self, definition_id: str) -> list[InstanceRecord]:
        items = await self._list(
            "instances",
            "/v1/backup_instances",
            "backup_instances",
            {"backup_definition_id": definition_id},
        )
        problems = Problems(self.stats)
        return parse_records(items, InstanceRecord, problems, "instances", lambda r: bool(r.id))

    async def _load_active(self, instance_id: str) -> BackupRecord | None:
        path = f"/v1/backup_instances/{quote(instance_id, safe='')}/backups/active"
        async with self._limit:
            reply = await self._client.request("active_backup", "GET", path, allow_empty=True)
        return parse_active(reply.body, Problems(self.stats))

    async def _load_newest_finished(self, instance_id: str) -> BackupRecord | None:
        path = f"/v1/backup_instances/{quote(instance_id, safe='')}/backups"
        problems = Problems(self.stats)
        async with self._limit:
            reply = await self._client.request("backups", "GET", path)
            records = parse_records(
                list_items(reply.body, "backups"), BackupRecord, problems, "backups"
            )
            url: str | None = reply.links.get("last")
            seen = {reply.url}
            for _ in range(MAX_BACKWARD_PAGES):
                if url is None or not self._client.same_origin(url) or url in seen:
                    break
                page = await self._client.request("backups", "GET", url)
                seen.add(page.url)
                records = parse_records(
                    list_items(page.body, "backups"), BackupRecord, problems, "backups"
                )
                if newest_finished(records) is not None:
                    break
                url = page.links.get("prev")
        return newest_finished(records)

    async def _instance(
        self, cache: EndpointCache, customer_id: str, instance_id: str
    ) -> _InstanceData:
        errors: list[str] = []
        oldest = self._clock()
        active: Cached[BackupRecord | None] | None
        finished: Cached[BackupRecord | None] | None
        try:
            active = await cache.get(
                "active_backup", instance_id, lambda: self._load_active(instance_id)
            )
        except FetchError as exc:
            errors.append(f"active backup: {exc.reason}")
            active = exc.stale
        try:
            finished = await cache.get(
                "backups", instance_id, lambda: self._load_newest_finished(instance_id)
            )
        except FetchError as exc:
            errors.append(f"backups: {exc.reason}")
            finished = exc.stale
        run = done = None
        if active is not None:
            oldest = min(oldest, active.fetched_at)
            if active.value is not None:
                run = BackupRun(customer_id, instance_id, active.value.started_at, None, "running")
        if finished is not None:
            oldest = min(oldest, finished.fetched_at)
            if finished.value is not None:
                record = finished.value
                done = BackupRun(
                    customer_id,
                    instance_id,
                    record.started_at,
                    record.finished_at,
                    backup_status(record.status),
                )
        return _InstanceData(run, done, "; ".join(errors) or None, oldest)

    async def collect(self, cache: EndpointCache) -> Snapshot:
        definitions = await cache.get("definitions", "", self._load_definitions)
        oldest = definitions.fetched_at
        instances: list[tuple[InstanceRecord, str]] = []
        for definition in definitions.value:
            assert definition.id is not None
            listed = await cache.get(
                "instances", definition.id, functools.partial(self._load_instances, definition.id)
            )
            oldest = min(oldest, listed.fetched_at)
            label = definition.name or definition.id
            instances.extend((record, label) for record in listed.value)

        customers: dict[str, Customer] = {}
        infos = []
        for record, definition_name in instances:
            assert record.id is not None
            cid = record.customer_id or f"instance-{record.id}"
            product = snake_case(definition_name)
            customers.setdefault(
                cid,
                Customer(
                    id=cid,
                    name=record.customer_name or record.name or cid,
                    domain="",
                    product=product,
                    status=customer_status(record.status) if record.status else UNKNOWN,
                ),
            )
            infos.append(BackupInstance(cid, record.id, record.name or record.id, definition_name))
        ids = {i.instance_id for i in infos}
        cache.retain("active_backup", ids)
        cache.retain("backups", ids)
        results = await asyncio.gather(
            *(self._instance(cache, i.customer_id, i.instance_id) for i in infos)
        )
        errors: dict[str, str] = {}
        for info, result in zip(infos, results, strict=True):
            if result.error:
                errors[info.customer_id] = result.error
        return Snapshot(
            customers=tuple(customers.values()),
            instances=tuple(infos),
            active_backups=tuple(r.active for r in results if r.active is not None),
            finished_backups=tuple(r.finished for r in results if r.finished is not None),
            customer_errors=errors,
            oldest_data=min([oldest, *(r.oldest for r in results)]),
        )

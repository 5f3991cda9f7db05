"""Legacy Backupify v1: which calls a refresh makes (definitions, their instances, each
instance's running and newest finished backup)."""

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
    UNKNOWN,
    BackupInstance,
    BackupRun,
    Customer,
    Snapshot,
    backup_status,
    customer_status,
    snake_case,
)
from exporter.parsing import Problems, parse_records
from exporter.source import Reading, Store
from exporter.vendors.backupify.parse import (
    BackupRecord,
    DefinitionRecord,
    InstanceRecord,
    newest_finished,
    parse_active,
)
from exporter.vendors.backupify.settings import BackupifySettings

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME: Final = 3600.0
# Only the last pages of an instance's backup list are read: it is in ascending id order.
MAX_BACKWARD_PAGES: Final = 3


@dataclass(frozen=True, slots=True)
class _InstanceData:
    active: BackupRun | None
    finished: BackupRun | None
    error: str | None
    oldest: float


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
        self._limit = asyncio.Semaphore(settings.max_concurrency)
        self.tokens = TokenCache(self._fetch_token, settings.token_margin_seconds)
        self._client = VendorClient.for_source(
            settings, auth=BearerAuth(self.tokens), stats=self.stats, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch_token(self, _: Token | None) -> Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.secret("client_secret"),
        }
        if self._settings.scope:
            form["scope"] = self._settings.scope
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
                endpoint, path, params, max_pages=self._settings.max_pages, items_key=key
            )

    async def _load_definitions(self) -> list[DefinitionRecord]:
        if self._settings.backup_definition_ids is not None:
            return [DefinitionRecord(id=i) for i in self._settings.backup_definition_ids]
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

    async def _instance(self, store: Store, customer_id: str, instance_id: str) -> _InstanceData:
        reading = Reading(store, self._clock)
        active = await reading.fetch(
            "active backup", "active_backup", instance_id, lambda: self._load_active(instance_id)
        )
        finished = await reading.fetch(
            "backups", "backups", instance_id, lambda: self._load_newest_finished(instance_id)
        )
        run = done = None
        if active is not None and active.value is not None:
            run = BackupRun(customer_id, instance_id, active.value.started_at, None, "running")
        if finished is not None and finished.value is not None:
            record = finished.value
            done = BackupRun(
                customer_id,
                instance_id,
                record.started_at,
                record.finished_at,
                backup_status(record.status),
            )
        return _InstanceData(run, done, reading.error, reading.oldest)

    async def collect(self, store: Store) -> Snapshot:
        definitions = await store.fetch("definitions", "", self._load_definitions)
        oldest = definitions.fetched_at
        instances: list[tuple[InstanceRecord, str]] = []
        for definition in definitions.value:
            assert definition.id is not None
            listed = await store.fetch(
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
        store.retain("active_backup", ids)
        store.retain("backups", ids)
        results = await asyncio.gather(
            *(self._instance(store, i.customer_id, i.instance_id) for i in infos)
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

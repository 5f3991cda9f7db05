"""Which Datto calls a refresh makes, in what order: the customer list, then each customer's
seats and applications."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

from exporter.http import ApiStats, VendorClient
from exporter.model import ApplicationBackup, Customer, Seat, Snapshot
from exporter.parsing import Problems
from exporter.source import Reading, Store
from exporter.vendors.datto.parse import (
    Applications,
    envelopes,
    parse_application_items,
    parse_domains,
    parse_seats,
    total_pages,
)
from exporter.vendors.datto.settings import DattoSettings

logger = logging.getLogger(__name__)

MAX_PAGES: Final = 100


@dataclass(frozen=True, slots=True)
class _CustomerData:
    customer: Customer
    seats: tuple[Seat, ...]
    applications: tuple[ApplicationBackup, ...]
    error: str | None
    oldest: float


class DattoSource:
    vendor = "datto"

    def __init__(
        self,
        settings: DattoSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.name
        self.stats = ApiStats()
        self._settings = settings
        self._clock = clock
        self._limit = asyncio.Semaphore(settings.max_concurrency)
        self._client = VendorClient.for_source(
            settings,
            auth=httpx.BasicAuth(settings.public_key, settings.secret("private_key")),
            stats=self.stats,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(
        self, endpoint: str, path: str, params: dict[str, str | int] | None = None
    ) -> Any:
        async with self._limit:
            return await self._client.get_json(endpoint, path, params)

    async def _load_domains(self) -> list[Customer]:
        body = await self._get("domains", "/v1/saas/domains")
        return parse_domains(body, Problems(self.stats))

    async def _load_seats(self, customer_id: str) -> list[Seat]:
        body = await self._get("seats", f"/v1/saas/{quote(customer_id, safe='')}/seats")
        return parse_seats(body, customer_id, Problems(self.stats))

    async def _load_applications(self, customer_id: str) -> Applications:
        path = f"/v1/saas/{quote(customer_id, safe='')}/applications"
        items: list[Any] = []
        page = 1
        while True:
            params: dict[str, str | int] = {
                "daysUntil": self._settings.applications_days,
                "_page": page,
                "_perPage": self._settings.applications_page_size,
            }
            found = envelopes(await self._get("applications", path, params))
            for envelope in found:
                items.extend(envelope["items"])
            if page >= min(total_pages(found), MAX_PAGES):
                break
            page += 1
        return parse_application_items(items, customer_id, Problems(self.stats), self._clock())

    async def _customer(self, store: Store, customer: Customer) -> _CustomerData:
        cid = customer.id
        reading = Reading(store, self._clock)
        seats = await reading.fetch("seats", "seats", cid, lambda: self._load_seats(cid))
        apps = await reading.fetch(
            "applications", "applications", cid, lambda: self._load_applications(cid)
        )
        if reading.error:
            logger.warning(
                "msg=%s source=%s customer_id=%s reason=%s",
                "customer read failed",
                self.name,
                cid,
                reading.error,
            )
        if apps is not None and apps.value.used_bytes is not None:
            customer = dataclasses.replace(customer, used_bytes=apps.value.used_bytes)
        return _CustomerData(
            customer,
            tuple(seats.value) if seats else (),
            tuple(apps.value.applications) if apps else (),
            reading.error,
            reading.oldest,
        )

    async def collect(self, store: Store) -> Snapshot:
        domains = await store.fetch("domains", "", self._load_domains)
        customers: list[Customer] = domains.value
        ids = {c.id for c in customers}
        store.retain("seats", ids)
        store.retain("applications", ids)
        results = await asyncio.gather(*(self._customer(store, c) for c in customers))
        return Snapshot(
            customers=tuple(r.customer for r in results),
            seats=tuple(s for r in results for s in r.seats),
            applications=tuple(a for r in results for a in r.applications),
            customer_errors={
                c.id: r.error for c, r in zip(customers, results, strict=True) if r.error
            },
            oldest_data=min([domains.fetched_at, *(r.oldest for r in results)]),
        )

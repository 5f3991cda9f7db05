"""Which Datto calls a crawl makes: the customer list (/domains), then per customer its seats
and its applications."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from exporter.http import ApiStats, VendorClient
from exporter.model import Customer, Seat, Snapshot
from exporter.parsing import Problems
from exporter.source import Listing, Part, Reading, Store, read_root
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


def client(
    settings: DattoSettings, stats: ApiStats, transport: httpx.AsyncBaseTransport | None
) -> VendorClient:
    """A client for Datto's API: Basic auth with the key pair, the source's limits."""
    return VendorClient.for_source(
        settings,
        auth=httpx.BasicAuth(settings.public_key, settings.secret("private_key")),
        stats=stats,
        transport=transport,
    )


def seats_path(customer_id: str) -> str:
    return f"/v1/saas/{quote(customer_id, safe='')}/seats"


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
        self._client = client(settings, self.stats, transport)
        self.pacer = self._client.pacer

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(
        self, endpoint: str, path: str, params: dict[str, str | int] | None = None
    ) -> Any:
        return await self._client.get_json(endpoint, path, params)

    def _problems(self) -> Problems:
        return Problems(self.stats, self._clock())

    async def _load_domains(self) -> list[Customer]:
        body = await self._get("domains", "/v1/saas/domains")
        return parse_domains(body, self._problems())

    async def _load_seats(self, customer_id: str) -> list[Seat]:
        body = await self._get("seats", seats_path(customer_id))
        return parse_seats(body, customer_id, self._problems())

    async def _load_applications(self, customer_id: str) -> Applications:
        path = f"/v1/saas/{quote(customer_id, safe='')}/applications"
        problems = self._problems()
        items: list[Any] = []
        limit = self._settings.applications_max_pages
        for page in range(1, limit + 1):
            params: dict[str, str | int] = {
                "daysUntil": self._settings.applications_days,
                "_page": page,
                "_perPage": self._settings.applications_page_size,
            }
            found = envelopes(await self._get("applications", path, params), problems)
            fresh = [item for envelope in found for item in envelope["items"]]
            items.extend(fresh)
            # An empty page ends the list whatever totalPages claims.
            if not fresh or page >= total_pages(found):
                break
        else:
            logger.warning(
                "msg=%s endpoint=%s pages=%s", "stopped at the page limit", "applications", limit
            )
        return parse_application_items(items, customer_id, problems, self._clock())

    async def listing(self, store: Store) -> Listing[Customer]:
        customers, reading = await read_root(store, "customer list", "domains", self._load_domains)
        by_id = {c.id: c for c in customers}
        store.retain("seats", by_id)
        store.retain("applications", by_id)
        return reading.listing(by_id, {c.id: c.name for c in customers})

    async def read(self, store: Store, customer_id: str, unit: Customer) -> Part:
        customer = unit
        reading = Reading(store)
        # Both at once: the client's slots bound the calls in flight, and a second call
        # waiting keeps a slot busy while the first one's answer is parsed.
        seats, apps = await asyncio.gather(
            reading.fetch("seats", "seats", customer_id, lambda: self._load_seats(customer_id)),
            reading.fetch(
                "applications",
                "applications",
                customer_id,
                lambda: self._load_applications(customer_id),
            ),
        )
        if apps is not None and apps.value.used_bytes is not None:
            customer = dataclasses.replace(customer, used_bytes=apps.value.used_bytes)
        records = Snapshot(
            customers=(customer,),
            seats=tuple(seats.value) if seats else (),
            applications=tuple(apps.value.applications) if apps else (),
        )
        return reading.part(customer_id, records)

"""Datto SaaS Protection (Backupify): customers, seats and per-application backup history.

Accepts both the published spec's shapes and what the live API returns:

- ``/v1/saas/domains``: ``{"domains": [...]}`` (spec) or a bare array (live); ids are strings
  (spec) or integers (live).
- ``/v1/saas/{id}/seats``: spec seats carry ``licenseStatus``, ``displayName``, ``email`` and
  ``lastBackup``; live seats carry ``seatState``, ``name``, ``mainId``, ``billable`` and no
  backup time at all.
- ``/v1/saas/{id}/applications``: a paged envelope, sometimes wrapped in an array; history
  times are epoch milliseconds and index 0 is the newest entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

from exporter.cache import Cached, EndpointCache, FetchError
from exporter.config import DattoSourceConfig
from exporter.http import ApiStats, VendorClient, VendorError
from exporter.model import (
    UNKNOWN,
    ApplicationBackup,
    Customer,
    Seat,
    Snapshot,
    backup_status,
    customer_status,
    snake_case,
)
from exporter.sources._parse import (
    Float,
    Int,
    Problems,
    Text,
    Timestamp,
    VendorModel,
    parse_records,
    unwrap_list,
)

logger = logging.getLogger(__name__)

MAX_PAGES: Final = 100

LICENSE_STATES: Final = {
    # spec: licenseStatus
    "licensed": "licensed",
    "unlicensed": "unlicensed",
    "paused": "paused",
    # live: seatState
    "active": "licensed",
    "unprotected": "unlicensed",
    "archived": "archived",
}

PRODUCTS: Final = {"office365": "microsoft_365", "google_apps": "google_workspace"}


class BackupStats(VendorModel):
    activeServicesCount: Int = None
    activeServicesWithRecentBackupCount: Int = None
    backupPercentage: Float = None


class DomainRecord(VendorModel):
    saasCustomerId: Text = None
    saasCustomerName: Text = None
    organizationName: Text = None
    domain: Text = None
    productType: Text = None
    status: Text = None
    seatsUsed: Int = None
    backupStats: dict[str, Any] | None = None


class SeatRecord(VendorModel):
    remoteId: Text = None
    displayName: Text = None
    name: Text = None
    email: Text = None
    mainId: Text = None
    seatType: Text = None
    licenseStatus: Text = None
    seatState: Text = None
    lastBackup: Timestamp = None


class AppRecord(VendorModel):
    appType: Text = None
    backupHistory: list[Any] | None = None


class HistoryEntry(VendorModel):
    startTime: Timestamp = None
    endTime: Timestamp = None
    status: Text = None
    activeServiceCount: Int = None
    activeServiceWithBackupCount: Int = None
    activeServiceWithPerfectBackupCount: Int = None


def license_state(value: str | None) -> str:
    return LICENSE_STATES.get((value or "").strip().lower(), UNKNOWN)


def to_customer(record: DomainRecord, problems: Problems) -> Customer:
    cid = record.saasCustomerId or ""
    stats = None
    if record.backupStats is not None:
        stats = BackupStats.model_validate(record.backupStats, context={"problems": problems})
    ratio = None
    if stats is not None and stats.backupPercentage is not None:
        ratio = stats.backupPercentage / 100.0
    product = snake_case(record.productType)
    return Customer(
        id=cid,
        name=record.saasCustomerName or record.organizationName or record.domain or cid,
        domain=record.domain or "",
        product=PRODUCTS.get(product, product),
        status=customer_status(record.status),
        seats_used=record.seatsUsed,
        services_active=stats.activeServicesCount if stats else None,
        services_recently_backed_up=stats.activeServicesWithRecentBackupCount if stats else None,
        backup_ratio=ratio,
    )


def parse_domains(body: Any, problems: Problems) -> list[Customer]:
    items = unwrap_list(body, "domains")
    if items is None:
        raise VendorError("GET /v1/saas/domains: unexpected response shape")
    records = parse_records(
        items, DomainRecord, problems, "domains", lambda r: bool(r.saasCustomerId)
    )
    customers: dict[str, Customer] = {}
    for record in records:
        customer = to_customer(record, problems)
        customers.setdefault(customer.id, customer)
    return list(customers.values())


def parse_seats(body: Any, customer_id: str, problems: Problems) -> list[Seat]:
    items = unwrap_list(body, "seats")
    if items is None:
        raise VendorError(f"GET /v1/saas/{customer_id}/seats: unexpected response shape")
    seats = []
    for record in parse_records(items, SeatRecord, problems, "seats", lambda r: bool(r.remoteId)):
        seat_id = record.remoteId or ""
        seats.append(
            Seat(
                customer_id=customer_id,
                id=seat_id,
                name=record.displayName or record.name or record.mainId or record.email or seat_id,
                seat_type=snake_case(record.seatType),
                license_state=license_state(record.licenseStatus or record.seatState),
                last_backup=record.lastBackup,
                reports_backup_time="lastBackup" in record.model_fields_set,
            )
        )
    return seats


def _envelopes(body: Any) -> list[dict[str, Any]]:
    candidates = body if isinstance(body, list) else [body]
    envelopes = [e for e in candidates if isinstance(e, dict) and isinstance(e.get("items"), list)]
    if not envelopes and candidates:
        raise VendorError("applications: unexpected response shape")
    return envelopes


def _total_pages(envelopes: list[dict[str, Any]]) -> int:
    total = 1
    for envelope in envelopes:
        pagination = envelope.get("pagination")
        if isinstance(pagination, dict):
            value = pagination.get("totalPages")
            if isinstance(value, int) and not isinstance(value, bool):
                total = max(total, value)
    return total


def newest_backup(
    application: str, customer_id: str, history: list[Any], problems: Problems
) -> ApplicationBackup:
    entries = parse_records(history, HistoryEntry, problems, f"{application}.backupHistory")
    # Index 0 is the newest; sort anyway (stable) in case an answer comes in another order.
    entries.sort(key=lambda e: e.startTime or e.endTime or 0.0, reverse=True)
    newest = entries[0] if entries else None
    finished = next((e.endTime for e in entries if e.endTime is not None), None)
    return ApplicationBackup(
        customer_id=customer_id,
        application=application,
        last_backup=finished,
        status=backup_status(newest.status) if newest else UNKNOWN,
        services_active=newest.activeServiceCount if newest else None,
        services_backed_up=newest.activeServiceWithBackupCount if newest else None,
        services_perfect=newest.activeServiceWithPerfectBackupCount if newest else None,
    )


def parse_application_items(
    items: list[Any], customer_id: str, problems: Problems
) -> list[ApplicationBackup]:
    found: dict[str, ApplicationBackup] = {}
    for item in items:
        suites = item.get("suites") if isinstance(item, dict) else None
        if not isinstance(suites, list):
            problems.add("applications.items", "no suites")
            continue
        for suite in suites:
            app_types = suite.get("appTypes") if isinstance(suite, dict) else None
            if not isinstance(app_types, list):
                problems.add("applications.suites", "no appTypes")
                continue
            for app in parse_records(app_types, AppRecord, problems, "applications.appTypes"):
                name = (app.appType or "").strip() or UNKNOWN
                backup = newest_backup(name, customer_id, app.backupHistory or [], problems)
                previous = found.get(name)
                if previous is None or (backup.last_backup or 0) > (previous.last_backup or 0):
                    found[name] = backup
    return [found[name] for name in sorted(found)]


@dataclass(frozen=True, slots=True)
class _CustomerData:
    seats: tuple[Seat, ...]
    applications: tuple[ApplicationBackup, ...]
    error: str | None
    oldest: float


class DattoSource:
    provider = "datto"

    def __init__(
        self,
        config: DattoSourceConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert config.private_key is not None  # the config validator guarantees it
        self.name = config.name
        self.stats = ApiStats()
        self._config = config
        self._clock = clock
        self._limit = asyncio.Semaphore(config.max_concurrency)
        self._client = VendorClient.for_source(
            config,
            auth=httpx.BasicAuth(config.public_key, config.private_key.get_secret_value()),
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

    async def _load_applications(self, customer_id: str) -> list[ApplicationBackup]:
        path = f"/v1/saas/{quote(customer_id, safe='')}/applications"
        items: list[Any] = []
        page = 1
        while True:
            params: dict[str, str | int] = {
                "daysUntil": self._config.applications_days,
                "_page": page,
                "_perPage": self._config.applications_page_size,
            }
            envelopes = _envelopes(await self._get("applications", path, params))
            for envelope in envelopes:
                items.extend(envelope["items"])
            if page >= min(_total_pages(envelopes), MAX_PAGES):
                break
            page += 1
        return parse_application_items(items, customer_id, Problems(self.stats))

    async def _customer(self, cache: EndpointCache, customer: Customer) -> _CustomerData:
        errors: list[str] = []
        oldest = self._clock()
        seats: tuple[Seat, ...] = ()
        applications: tuple[ApplicationBackup, ...] = ()
        cid = customer.id
        cached_seats: Cached[list[Seat]] | None
        cached_apps: Cached[list[ApplicationBackup]] | None
        try:
            cached_seats = await cache.get("seats", cid, lambda: self._load_seats(cid))
        except FetchError as exc:
            errors.append(f"seats: {exc.reason}")
            cached_seats = exc.stale
        if cached_seats is not None:
            seats = tuple(cached_seats.value)
            oldest = min(oldest, cached_seats.fetched_at)
        try:
            cached_apps = await cache.get("applications", cid, lambda: self._load_applications(cid))
        except FetchError as exc:
            errors.append(f"applications: {exc.reason}")
            cached_apps = exc.stale
        if cached_apps is not None:
            applications = tuple(cached_apps.value)
            oldest = min(oldest, cached_apps.fetched_at)
        if errors:
            logger.warning(
                "msg=%s source=%s customer_id=%s reason=%s",
                "customer read failed",
                self.name,
                cid,
                "; ".join(errors),
            )
        return _CustomerData(seats, applications, "; ".join(errors) or None, oldest)

    async def collect(self, cache: EndpointCache) -> Snapshot:
        domains = await cache.get("domains", "", self._load_domains)
        customers: list[Customer] = domains.value
        ids = {c.id for c in customers}
        cache.retain("seats", ids)
        cache.retain("applications", ids)
        results = await asyncio.gather(*(self._customer(cache, c) for c in customers))
        return Snapshot(
            customers=tuple(customers),
            seats=tuple(s for r in results for s in r.seats),
            applications=tuple(a for r in results for a in r.applications),
            customer_errors={
                c.id: r.error for c, r in zip(customers, results, strict=True) if r.error
            },
            oldest_data=min([domains.fetched_at, *(r.oldest for r in results)]),
        )

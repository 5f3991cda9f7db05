"""Datto SaaS Protection responses into vendor-neutral records.

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

from typing import Any, Final

from exporter.http import VendorError
from exporter.model import (
    UNKNOWN,
    ApplicationBackup,
    Customer,
    Seat,
    backup_status,
    customer_status,
    snake_case,
)
from exporter.parsing import (
    Float,
    Int,
    Problems,
    Text,
    Timestamp,
    VendorModel,
    parse_records,
    unwrap_list,
)

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


def envelopes(body: Any) -> list[dict[str, Any]]:
    candidates = body if isinstance(body, list) else [body]
    envelopes = [e for e in candidates if isinstance(e, dict) and isinstance(e.get("items"), list)]
    if not envelopes and candidates:
        raise VendorError("applications: unexpected response shape")
    return envelopes


def total_pages(envelopes: list[dict[str, Any]]) -> int:
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

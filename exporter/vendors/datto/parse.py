"""Datto SaaS Protection responses into vendor-neutral records.

Accepts both the published spec's shapes and what the live API returns:

- ``/v1/saas/domains``: ``{"domains": [...]}`` (spec) or a bare array (live); ids are strings
  (spec) or integers (live).
- ``/v1/saas/{id}/seats``: spec seats carry ``licenseStatus``, ``displayName``, ``email`` and
  ``lastBackup``; live seats carry ``seatState``, ``name``, ``mainId``, ``billable`` and no
  backup time at all.
- ``/v1/saas/{id}/applications``: a paged envelope, sometimes wrapped in an array. Live, each
  ``backupHistory`` entry is a daily window, not a backup: ``timeWindow`` Between0dAnd1d ...
  Between9dAnd10d, newest first, ``startTime`` the *later* bound, with per-window service counts
  and a status of ``Perfect``, ``Backup With Issues`` or ``Insufficient History``. Entries
  without a ``timeWindow`` are read as individual backups, as before (epoch milliseconds, index
  0 the newest). ``lastFullyProtectedTime`` is epoch milliseconds or a bucket such as
  ``OVER_10_DAYS_AGO``; ``usedBytes`` and ``uningestedServiceCount`` come per application.

Source of the live facts: the TypeScript MCP server for Datto SaaS Protection run against the
live API (GitHub itsimplyltd/datto-saas-protection-mcp, src/datto-api.ts and
src/backup-report-summary.ts).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Final

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
    RawDict,
    Text,
    Timestamp,
    VendorModel,
    first_by_id,
    parse_records,
    plausible_time,
    unwrap_list,
    wrong_shape,
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

# Statuses of a live daily window; Datto has shown no failure word yet, so anything else is
# unknown rather than guessed.
WINDOW_STATUSES: Final = {
    "perfect": "success",
    "backup with issues": "partial",
    "insufficient history": "pending",
}
NEWEST_WINDOW: Final = "Between0dAnd1d"
# lastFullyProtectedTime buckets: OVER_10_DAYS_AGO, BETWEEN_1_AND_2_DAYS_AGO. The first number
# is the lower bound of the age.
_BUCKET = re.compile(r"^(?:OVER|BETWEEN)_(\d{1,4})_(?:AND_\d{1,4}_)?DAYS?_AGO$")
DAY: Final = 86400.0
HOUR: Final = 3600.0
# The spec's and the live API's words for a billable seat.
BILLABLE: Final = {"1": True, "true": True, "": False, "0": False, "false": False}


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
    backupStats: RawDict = None


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
    billable: Text = None


class AppRecord(VendorModel):
    appType: Text = None
    backupHistory: list[Any] | None = None
    usedBytes: Float = None
    uningestedServiceCount: Int = None
    # Epoch milliseconds or a bucket string: read by fully_protected().
    lastFullyProtectedTime: int | float | str | None = None


class HistoryEntry(VendorModel):
    timeWindow: Text = None
    startTime: Timestamp = None
    endTime: Timestamp = None
    status: Text = None
    activeServiceCount: Int = None
    activeServiceWithBackupCount: Int = None
    activeServiceWithPerfectBackupCount: Int = None


class Item(VendorModel):
    usedBytes: Float = None


@dataclass(frozen=True, slots=True)
class Applications:
    """One customer's /applications answer."""

    applications: list[ApplicationBackup]
    used_bytes: float | None


def license_state(value: str | None) -> str:
    return LICENSE_STATES.get((value or "").strip().lower(), UNKNOWN)


def to_customer(record: DomainRecord, problems: Problems) -> Customer:
    cid = record.saasCustomerId or ""
    stats = None
    if record.backupStats is not None:
        stats = BackupStats.model_validate(record.backupStats, context={"problems": problems})
    ratio = None
    if stats is not None and stats.backupPercentage is not None:
        if stats.backupPercentage <= 100:
            ratio = stats.backupPercentage / 100.0
        else:
            problems.add("backupStats.backupPercentage", "over 100")
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
        raise wrong_shape(problems, "GET /v1/saas/domains")
    records = parse_records(
        items, DomainRecord, problems, "domains", lambda r: bool(r.saasCustomerId)
    )
    customers: dict[str, Customer] = {}
    for record in records:
        customer = to_customer(record, problems)
        customers.setdefault(customer.id, customer)
    return list(customers.values())


def seat_records(body: Any, customer_id: str, problems: Problems) -> list[SeatRecord]:
    """A customer's /seats answer as records, one per seat id."""
    items = unwrap_list(body, "seats")
    if items is None:
        raise wrong_shape(problems, f"GET /v1/saas/{customer_id}/seats")
    records = parse_records(items, SeatRecord, problems, "seats", lambda r: bool(r.remoteId))
    return list(first_by_id(records, lambda r: r.remoteId))


def parse_seats(body: Any, customer_id: str, problems: Problems) -> list[Seat]:
    seats = []
    for record in seat_records(body, customer_id, problems):
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
                billable=billable(record.billable, "billable" in record.model_fields_set, problems),
            )
        )
    return seats


def billable(value: str | None, given: bool, problems: Problems) -> bool | None:
    """Live seats say "1" or "" (Datto's docs say "0", never seen live); None when not given."""
    if not given:
        return None
    word = BILLABLE.get((value or "").strip().lower())
    if word is None:
        problems.add("seats.billable", "not 1 or empty")
    return word


def fully_protected(value: object, fetched_at: float, problems: Problems) -> float | None:
    """``lastFullyProtectedTime`` in Unix seconds. A bucket (over N days ago) becomes its bound,
    fetch time minus N days: a lower bound of the age, never a made-up exact time. The fetch
    time is rounded up to the hour (the bound stays a lower bound) so that the value moves once
    an hour, not with every read, and an unchanged customer is not rendered again."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        bucket = _BUCKET.match(text.upper())
        if bucket is not None:
            bound = math.ceil(fetched_at / HOUR) * HOUR - int(bucket.group(1)) * DAY
            return _plausible(bound, fetched_at, problems)
        if not (text.isascii() and text.isdigit()):
            problems.add("lastFullyProtectedTime", "unreadable bucket")
            return None
        value = int(text)
    if not isinstance(value, int | float) or not 1e11 < value < 1e14:
        problems.add("lastFullyProtectedTime", "not epoch milliseconds")
        return None
    return _plausible(float(value) / 1000.0, fetched_at, problems)


def _plausible(seconds: float, fetched_at: float, problems: Problems) -> float | None:
    if plausible_time(seconds, fetched_at):
        return seconds
    problems.add("lastFullyProtectedTime", "implausible time")
    return None


def envelopes(body: Any, problems: Problems) -> list[dict[str, Any]]:
    candidates = body if isinstance(body, list) else [body]
    envelopes = [e for e in candidates if isinstance(e, dict) and isinstance(e.get("items"), list)]
    if not envelopes and candidates:
        raise wrong_shape(problems, "applications")
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


def newest_window(
    application: str, customer_id: str, windows: list[HistoryEntry]
) -> ApplicationBackup:
    """The live shape: the last day's window (else the first entry, the newest). Window bounds
    are not backup times, so no last-backup time comes from them."""
    window = next((w for w in windows if w.timeWindow == NEWEST_WINDOW), windows[0])
    return ApplicationBackup(
        customer_id=customer_id,
        application=application,
        last_backup=None,
        status=WINDOW_STATUSES.get((window.status or "").strip().lower(), UNKNOWN),
        services_active=window.activeServiceCount,
        services_backed_up=window.activeServiceWithBackupCount,
        services_perfect=window.activeServiceWithPerfectBackupCount,
    )


def read_application(
    app: AppRecord, customer_id: str, fetched_at: float, problems: Problems
) -> ApplicationBackup:
    application = (app.appType or "").strip() or UNKNOWN
    entries = parse_records(
        app.backupHistory or [], HistoryEntry, problems, f"{application}.backupHistory"
    )
    windows = [e for e in entries if e.timeWindow]
    if windows:
        backup = newest_window(application, customer_id, windows)
    else:
        backup = newest_backup(application, customer_id, entries)
    return dataclasses.replace(
        backup,
        services_uningested=app.uningestedServiceCount,
        last_fully_protected=fully_protected(app.lastFullyProtectedTime, fetched_at, problems),
        used_bytes=app.usedBytes,
    )


def newest_backup(
    application: str, customer_id: str, entries: list[HistoryEntry]
) -> ApplicationBackup:
    """Entries that are individual backups (no ``timeWindow``)."""
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
    items: list[Any], customer_id: str, problems: Problems, fetched_at: float
) -> Applications:
    found: dict[str, ApplicationBackup] = {}
    used: list[float] = []
    for item in items:
        if isinstance(item, dict):
            size = Item.model_validate(item, context={"problems": problems}).usedBytes
            if size is not None:
                used.append(size)
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
                backup = read_application(app, customer_id, fetched_at, problems)
                name = backup.application
                previous = found.get(name)
                if previous is None or (backup.last_backup or 0) > (previous.last_backup or 0):
                    found[name] = backup
    return Applications([found[name] for name in sorted(found)], sum(used) if used else None)

"""Vendor-neutral records that every source produces and the renderer consumes.

Times are Unix seconds (float). Enumerated values are normalized to a small, documented
vocabulary; anything a vendor sends outside it becomes ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

UNKNOWN: Final = "unknown"

LICENSE_STATES: Final = ("licensed", "paused", "unlicensed", "archived", UNKNOWN)
BACKUP_STATUSES: Final = (
    "success",
    "partial",
    "failed",
    "cancelled",
    "running",
    "pending",
    "paused",
    UNKNOWN,
)
TERMINAL_STATUSES: Final = frozenset({"success", "partial", "failed", "cancelled"})
CUSTOMER_STATUSES: Final = ("active", "inactive", "suspended", "cancelled", "expired", UNKNOWN)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
# JSON may escape a lone UTF-16 surrogate ("\ud800"); no UTF-8 encoder accepts one.
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT: Final = "\ufffd"


def valid_text(value: str) -> str:
    """The text as valid Unicode: each lone surrogate becomes U+FFFD, everything else stays as
    given. Every vendor string passes through it before it reaches a record, and the renderer
    may apply it to label values as a last guard."""
    if value.isascii():
        return value
    return _SURROGATE.sub(REPLACEMENT, value)


def snake_case(value: str | None) -> str:
    """``SharedMailbox`` -> ``shared_mailbox``; empty or missing -> ``unknown``."""
    if not value:
        return UNKNOWN
    words = _CAMEL_BOUNDARY.sub("_", value.strip()).lower()
    return _NON_WORD.sub("_", words).strip("_") or UNKNOWN


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    domain: str
    product: str
    status: str
    seats_used: int | None = None
    services_active: int | None = None
    services_recently_backed_up: int | None = None
    backup_ratio: float | None = None
    # Storage the vendor reports for the customer's backups.
    used_bytes: float | None = None


@dataclass(frozen=True, slots=True)
class Seat:
    customer_id: str
    id: str
    name: str
    seat_type: str
    license_state: str
    last_backup: float | None = None
    # False when the vendor gives no per-seat backup time at all (Datto's live /seats);
    # only then is a missing last_backup "unknown" rather than "never backed up".
    reports_backup_time: bool = False
    # Whether the vendor bills the seat; None where it does not say.
    billable: bool | None = None


@dataclass(frozen=True, slots=True)
class ApplicationBackup:
    customer_id: str
    application: str
    last_backup: float | None
    status: str
    services_active: int | None = None
    services_backed_up: int | None = None
    services_perfect: int | None = None
    # Services found but not yet taken into backup.
    services_uningested: int | None = None
    # The last time every service of the application was backed up; where the vendor gives
    # only a bucket ("over 10 days ago"), the bucket's bound: a lower bound of the age.
    last_fully_protected: float | None = None
    used_bytes: float | None = None
    # The vendor's own words for a running backup's progress (a state such as PREPARE), shown
    # as given: no vendor documents a ratio.
    progress: str | None = None
    # False: the vendor has this application's backups switched off (paused, archived).
    enabled: bool | None = None
    # The vendor's own words for when the next backup runs ("In 7 hours"), shown as given.
    next_backup: str | None = None


@dataclass(frozen=True, slots=True)
class BackupRun:
    customer_id: str
    instance_id: str
    started: float | None
    ended: float | None
    status: str


@dataclass(frozen=True, slots=True)
class RestoreJob:
    job_id: str
    customer_id: str
    kind: str  # restore, download, export or unknown
    status: str
    started: float | None
    ended: float | None
    records_processed: int | None = None
    records_failed: int | None = None


@dataclass(frozen=True, slots=True)
class BackupInstance:
    """One protected workload (Backupify's backup instance)."""

    customer_id: str
    instance_id: str
    name: str
    definition: str
    last_success: float | None = None
    # How often the instance is meant to back up; None when it is not meant to (or unknown).
    backup_interval: float | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one source knew after one refresh."""

    customers: tuple[Customer, ...] = ()
    seats: tuple[Seat, ...] = ()
    applications: tuple[ApplicationBackup, ...] = ()
    instances: tuple[BackupInstance, ...] = ()
    active_backups: tuple[BackupRun, ...] = ()
    finished_backups: tuple[BackupRun, ...] = ()
    restore_jobs: tuple[RestoreJob, ...] = ()
    # Customers whose last read failed, with a short reason that never holds a secret.
    customer_errors: dict[str, str] = field(default_factory=dict)
    # Fetch time of the oldest piece of data in this snapshot.
    oldest_data: float = 0.0


_BACKUP_STATUS_WORDS: Final = {
    "success": "success",
    "succeeded": "success",
    "successful": "success",
    "completed": "success",
    "complete": "success",
    "ok": "success",
    "partial": "partial",
    "partialsuccess": "partial",
    "partiallysucceeded": "partial",
    "completedwitherrors": "partial",
    "completedwithwarnings": "partial",
    "warning": "partial",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "errored": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "aborted": "cancelled",
    "inprogress": "running",
    "running": "running",
    "started": "running",
    "active": "running",
    "pending": "pending",
    "queued": "pending",
    "scheduled": "pending",
    "waiting": "pending",
    "paused": "paused",
    "suspended": "paused",
}


def backup_status(value: object) -> str:
    """A vendor's backup or job status in the shared vocabulary; anything else is unknown."""
    if not isinstance(value, str):
        return UNKNOWN
    return _BACKUP_STATUS_WORDS.get(_NON_WORD.sub("", value.lower()), UNKNOWN)


def customer_status(value: object) -> str:
    if not isinstance(value, str):
        return UNKNOWN
    word = snake_case(value)
    if word == "canceled":
        word = "cancelled"
    return word if word in CUSTOMER_STATUSES else UNKNOWN


def merge(parts: Iterable[Snapshot], oldest_data: float) -> Snapshot:
    """One snapshot holding every part's records, in the parts' order."""
    listed = list(parts)
    errors: dict[str, str] = {}
    for part in listed:
        errors.update(part.customer_errors)
    return Snapshot(
        customers=tuple(r for p in listed for r in p.customers),
        seats=tuple(r for p in listed for r in p.seats),
        applications=tuple(r for p in listed for r in p.applications),
        instances=tuple(r for p in listed for r in p.instances),
        active_backups=tuple(r for p in listed for r in p.active_backups),
        finished_backups=tuple(r for p in listed for r in p.finished_backups),
        restore_jobs=tuple(r for p in listed for r in p.restore_jobs),
        customer_errors=errors,
        oldest_data=oldest_data,
    )

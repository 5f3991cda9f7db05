"""Legacy Backupify v1 responses into records: customers, definitions, instances, backups and
exports, in the two shapes a Backupify server has been seen to answer.

**The swagger shape** (the vendor's published contract, ``api.backupify.com/docs/json/api.json``;
a converted copy is GitHub ``APIs-guru/openapi-directory``,
``APIs/backupify.com/1.0.0/swagger.yaml``), which the live API follows:

- ``POST /oauth/token`` (form: ``client_id``, ``client_secret``,
  ``grant_type=client_credentials``, ``scope=write``, all required) ->
  ``{access_token, expires_in, token_type: "bearer_token"}``
- ``GET /v1/customers`` -> ``[{id, name}]``; ``name`` is a "vendor provided ID uniquely
  identifying customer", so it is shown exactly as given
- ``GET /v1/customers/{id}/backup_instances`` -> that customer's instances
- ``GET /v1/backup_definitions/{id}`` -> ``{id, name, description, published, vendor_id}``
- an instance: ``id``, ``backup_definition_id``, ``customer_id``,
  ``backup_frequency`` (``off|daily|weekly``), ``last_backup_state`` (``queued|in progress|
  successful|failed|canceled``, with a space), ``last_successful_backup``,
  ``next_scheduled_backup``; no name of its own
- a backup: ``id``, ``started_at``, ``ended_at`` (null while running), ``status``
  (``queued|in_progress|successful|failed|canceled``), ``failures``
- ``GET …/backups/active``: a backup, or 204 when none runs (404: an unknown instance, an error)
- an export: ``id``, ``backup_instance_id``, ``started_at``, ``ended_at``, ``status`` (the
  backup words), ``records_processed``, ``records_failed`` and more. The documented 200 schema of
  the exports *list* is a single export object, so a lone object is read as a list of one.
  ``exported_data_url`` is a bearer link to the customer's data: no model below has a field for
  it, so it is dropped while parsing and never reaches a record, a log line or a metric.
- times: ISO 8601 with offsets (``-04:00``) and sometimes milliseconds

**The spec shape**: what the exporter assumed before the swagger was found. Servers answering it
must still read right, so its alternates stay accepted:

- ``GET /v1/backup_definitions`` -> ``[{id, name}]`` (every vendor's definitions)
- ``GET /v1/backup_instances?backup_definition_id=`` -> instances with ``customer_id``,
  ``customer_name`` or ``name``, ``status`` or ``state`` (the instance's own state)
- backups: ``status`` or ``state`` (``running``, ``completed``, ``completed_with_errors``,
  ``failed``), ``started_at`` or ``created_at``, ``finished_at`` or ``completed_at``

Lists are a bare array or ``{<name>|data|items: [...]}``, 20 a page in ascending id order, paged
by RFC 8288 ``Link`` headers (``next``, ``prev``, ``first``, ``last``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from exporter.model import TERMINAL_STATUSES, UNKNOWN
from exporter.parsing import (
    Int,
    Problems,
    Text,
    Timestamp,
    VendorModel,
    alias,
    items_of,
    parse_records,
)

DAY: Final = 86400.0

# Backupify's own words, mapped here rather than through the shared word list: the same word
# can mean different things at different vendors.
STATUSES: Final[Mapping[str, str]] = {
    "queued": "pending",
    # Backups and exports say in_progress; an instance's last_backup_state says "in progress".
    "in_progress": "running",
    "successful": "success",
    "failed": "failed",
    "canceled": "cancelled",
    # The spec shape's words, assumed before the swagger was known.
    "running": "running",
    "completed": "success",
    "completed_with_errors": "partial",
}

# How often an instance is meant to back up. "off": never, so it can never be overdue.
INTERVALS: Final[Mapping[str, float | None]] = {"daily": DAY, "weekly": 7 * DAY, "off": None}

_SEPARATORS = re.compile(r"[\s\-]+")
# Longer digit strings are not ids that order by number (and int() refuses past 4,300 digits).
_MAX_NUMERIC_ID: Final = 30


def _word(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return _SEPARATORS.sub("_", value.strip().lower())


def backup_status(value: object) -> str:
    """A Backupify backup, export or instance state in the shared vocabulary; else unknown."""
    word = _word(value)
    return UNKNOWN if word is None else STATUSES.get(word, UNKNOWN)


def backup_interval(frequency: object) -> float | None:
    """Seconds between scheduled backups; None for ``off`` and for words we do not know, so that
    no staleness is judged against a guess."""
    word = _word(frequency)
    return None if word is None else INTERVALS.get(word)


class CustomerRecord(VendorModel):
    id: Text = None
    name: Text = None


class DefinitionRecord(VendorModel):
    id: Text = None
    name: Text = alias("name", "description")


class InstanceRecord(VendorModel):
    id: Text = None
    customer_id: Text = alias("customer_id", "customerId")
    definition_id: Text = alias("backup_definition_id", "backupDefinitionId")
    # Spec shape only: the swagger's instances carry no names.
    customer_name: Text = alias("customer_name", "customerName")
    name: Text = None
    status: Text = alias("status", "state")
    # Swagger shape.
    last_backup_state: Text = None
    backup_frequency: Text = None
    last_success: Timestamp = alias("last_successful_backup")


class BackupRecord(VendorModel):
    id: Text = None
    status: Text = alias("status", "state")
    started_at: Timestamp = alias("started_at", "created_at", "start_time")
    finished_at: Timestamp = alias("finished_at", "completed_at", "ended_at", "end_time")


class ExportRecord(VendorModel):
    """An export (Backupify's download job). Deliberately without ``exported_data_url``."""

    id: Text = None
    instance_id: Text = alias("backup_instance_id")
    status: Text = None
    started_at: Timestamp = None
    ended_at: Timestamp = alias("ended_at", "finished_at")
    records_processed: Int = None
    records_failed: Int = None


def _id_order(record: BackupRecord | ExportRecord) -> tuple[int, float, str]:
    raw = record.id or ""
    numeric = raw.isascii() and raw.isdigit() and len(raw) <= _MAX_NUMERIC_ID
    return (int(raw) if numeric else -1, record.started_at or 0.0, raw)


def finished(record: BackupRecord) -> bool:
    return record.finished_at is not None or backup_status(record.status) in TERMINAL_STATUSES


def newest_finished(records: list[BackupRecord]) -> BackupRecord | None:
    return max((r for r in records if finished(r)), key=_id_order, default=None)


def parse_backups(body: Any, problems: Problems) -> list[BackupRecord]:
    items = items_of(body, "backups", problems, "backups")
    return parse_records(items, BackupRecord, problems, "backups")


def parse_active(body: Any, problems: Problems) -> BackupRecord | None:
    """``backups/active``: None when nothing runs (204 or an empty body)."""
    if not body:
        return None
    if isinstance(body, dict) and isinstance(body.get("backup"), dict):
        body = body["backup"]
    records = parse_records([body], BackupRecord, problems, "backups/active")
    return records[0] if records else None


def parse_exports(body: Any, problems: Problems) -> list[ExportRecord]:
    # The swagger documents this list's 200 body as one export object: read that as a page of one.
    if isinstance(body, dict) and "id" in body:
        items = [body]
    else:
        items = items_of(body, "exports", problems, "exports")
    return parse_records(items, ExportRecord, problems, "exports", lambda r: bool(r.id))


def parse_definition(body: Any, problems: Problems) -> DefinitionRecord | None:
    if isinstance(body, dict) and isinstance(body.get("backup_definition"), dict):
        body = body["backup_definition"]
    records = parse_records([body], DefinitionRecord, problems, "backup_definition")
    return records[0] if records else None


def in_window(record: ExportRecord, since: float) -> bool:
    """Started at or after ``since``; a queued export with no start yet is as new as they come."""
    return record.started_at is None or record.started_at >= since


def distinct_newest_first(records: list[ExportRecord]) -> list[ExportRecord]:
    """Each export once (pages read twice overlap), newest first."""
    unique = {r.id: r for r in records}
    return sorted(unique.values(), key=_id_order, reverse=True)

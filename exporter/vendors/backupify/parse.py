"""Legacy Backupify v1 responses into records: definitions, instances and backups.

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

from typing import Any

from exporter.model import TERMINAL_STATUSES, backup_status
from exporter.parsing import Problems, Text, Timestamp, VendorModel, alias, parse_records


class DefinitionRecord(VendorModel):
    id: Text = None
    name: Text = alias("name", "description")


class InstanceRecord(VendorModel):
    id: Text = None
    customer_id: Text = alias("customer_id", "customerId")
    customer_name: Text = alias("customer_name", "customerName")
    name: Text = None
    status: Text = alias("status", "state")


class BackupRecord(VendorModel):
    id: Text = None
    status: Text = alias("status", "state")
    started_at: Timestamp = alias("started_at", "created_at", "start_time")
    finished_at: Timestamp = alias("finished_at", "completed_at", "ended_at", "end_time")


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

"""CloudAlly responses into records: backup tasks (one protected workload each), partner tasks
(restore and download jobs), job statuses and tokens.

The API publishes no response schemas. The shapes assumed here (documented in the README):

- ``POST /auth/partner`` -> ``{accessToken|access_token|token, refreshToken|refresh_token,
  expiresIn|expires_in}`` (possibly under ``data``); ``POST /auth/refresh`` likewise
- ``GET /v1/backup-tasks?page=&pageSize=&nextPageToken=`` ->
  ``{data: [...], totalPages, nextPageToken}``; a task: ``id``, ``customerId``/``accountId``,
  ``customerName``/``accountName``, ``alias``/``name``, ``type``/``source``/``service``,
  ``status``, ``lastBackupDate``/``lastBackup``/``lastRunTime``
- ``GET /v1/partners/tasks`` -> tasks with ``id``/``jobId``, ``type`` (restore, download, ...),
  ``customerId``, ``createdAt``
- ``GET /v1/restore/{jobId}`` -> ``{status, startTime|startedAt|createdAt,
  endTime|finishedAt|completedAt}``

Statuses seen only in an unofficial schema (success, failed, in_progress, paused, pending) are
mapped; anything else is ``unknown``, never a success or a failure.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Final

from exporter.http import Token, VendorError
from exporter.model import UNKNOWN, snake_case
from exporter.parsing import Text, Timestamp, VendorModel, alias

DEFAULT_TOKEN_LIFETIME: Final = 3600.0
JOB_KINDS: Final = {"restore": "restore", "download": "download", "export": "download"}


class TaskRecord(VendorModel):
    id: Text = alias("id", "taskId")
    customer_id: Text = alias("customerId", "accountId", "userId")
    customer_name: Text = alias("customerName", "accountName", "userEmail", "email")
    name: Text = alias("alias", "name", "taskName")
    service: Text = alias("type", "source", "service", "serviceType")
    status: Text = alias("status", "lastBackupStatus", "backupStatus")
    last_backup: Timestamp = alias("lastBackupDate", "lastBackup", "lastRunTime", "lastBackupTime")


class JobRecord(VendorModel):
    id: Text = alias("jobId", "id", "taskId")
    kind: Text = alias("type", "taskType", "kind")
    customer_id: Text = alias("customerId", "accountId", "userId")
    created: Timestamp = alias("createdAt", "created", "creationDate", "startTime")
    status: Text = None


class JobStatusRecord(VendorModel):
    status: Text = alias("status", "state")
    started: Timestamp = alias("startTime", "startedAt", "createdAt", "startDate")
    ended: Timestamp = alias("endTime", "finishedAt", "completedAt", "endDate")


def job_kind(value: str | None) -> str | None:
    """restore / download, or None for partner tasks that are neither."""
    word = snake_case(value)
    for needle, kind in JOB_KINDS.items():
        if needle in word:
            return kind
    return None


PRODUCT_HINTS: Final = (
    (
        ("exchange", "sharepoint", "one_drive", "onedrive", "teams", "office", "ms_", "o365"),
        "microsoft_365",
    ),
    (("google", "gmail", "g_drive", "gdrive", "g_suite"), "google_workspace"),
    (("salesforce",), "salesforce"),
    (("dropbox",), "dropbox"),
    (("box",), "box"),
)


def product(service: str | None) -> str:
    word = snake_case(service)
    for needles, name in PRODUCT_HINTS:
        if any(n in word for n in needles):
            return name
    return UNKNOWN


def token_from(body: Any, what: str) -> Token:
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict):
        raise VendorError(f"{what}: unexpected response shape")
    access = next(
        (body[k] for k in ("accessToken", "access_token", "token") if isinstance(body.get(k), str)),
        None,
    )
    if not access:
        raise VendorError(f"{what}: no access token in the response")
    refresh = next(
        (body[k] for k in ("refreshToken", "refresh_token") if isinstance(body.get(k), str)),
        None,
    )
    lifetime = next(
        (body[k] for k in ("expiresIn", "expires_in") if isinstance(body.get(k), int | float)),
        DEFAULT_TOKEN_LIFETIME,
    )
    if lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return Token(access, time.monotonic() + float(lifetime), refresh)


def application_names(tasks: list[TaskRecord]) -> dict[str, str]:
    """Task id -> application label, unique within a customer: a second task of the same
    service gets its task id appended, so no two tasks collide on one series."""
    names: dict[str, str] = {}
    taken: dict[str, set[str]] = defaultdict(set)
    for task in sorted(tasks, key=lambda t: t.id or ""):
        assert task.id is not None
        base = snake_case(task.service)
        label = base if base not in taken[task.customer_id or ""] else f"{base}/{task.id}"
        taken[task.customer_id or ""].add(label)
        names[task.id] = label
    return names

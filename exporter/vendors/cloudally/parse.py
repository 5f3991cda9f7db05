"""CloudAlly responses into records: backup tasks (one protected workload each), restore and
download jobs, per-task backup statuses, tokens.

Two generations of the API are read (shapes documented in the README):

- live, as public clients see it: ``GET /v1/partners/tasks`` lists every task of the partner,
  backup tasks first (``type: BACKUP``, ``source`` naming what is backed up, ``status`` ACTIVE /
  PAUSED / ARCHIVED, ``lastBackupDates: {SOURCE: yyyymmddhhmmss}``, ``nextBackup`` text,
  ``size`` in bytes, ``progress`` null or an object), then restore and download tasks;
  ``GET /v1/partners/status`` gives per task ``backupStatus: [{subSource, status, error}]``.
- the spec's ``GET /v1/backup-tasks``: ``id``, ``accountId``, ``accountName``, ``alias``,
  ``source``, ``status`` (an outcome word), ``lastBackupDate`` (ISO 8601).

Nothing public shows a live restore or download task, nor ``/v1/restore/{jobId}``: their fields
(``id``, ``type``, ``customerId``/``userId``, ``createdAt``/``createDate``; ``status``,
``startTime``, ``endTime``) are assumptions.

Words are mapped through this package's own tables, never a shared list: CloudAlly's ``ACTIVE``
means "enabled", where other vendors use it for "running". Anything else is ``unknown``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BeforeValidator,
    WrapValidator,
)

from exporter.http import Token, VendorError
from exporter.model import UNKNOWN, snake_case, valid_text
from exporter.parsing import (
    Float,
    Problems,
    RawDict,
    RawList,
    Text,
    VendorModel,
    alias,
    lenient,
    parse_records,
    plausible,
    wrong_shape,
)

DEFAULT_TOKEN_LIFETIME: Final = 3600.0
JOB_KINDS: Final = {"restore": "restore", "download": "download", "export": "download"}

# A task's `status` is its state, not a backup outcome: ACTIVE = backups switched on.
TASK_ENABLED: Final = {"active": True, "paused": False, "archived": False}
# Outcome words of the unofficial schema (the spec listing's task status, restore job status).
OUTCOMES: Final = {
    "success": "success",
    "failed": "failed",
    "in_progress": "running",
    "paused": "paused",
    "pending": "pending",
}
# /v1/partners/status backupStatus[].status: only FAILED says anything about the outcome;
# ACTIVE and ARCHIVED describe the (sub)source's state.
STATUS_FAILED: Final = "failed"
COMPACT_DIGITS: Final = 14


def _cloudally_time(value: Any) -> Any:
    """``yyyymmddhhmmss`` (number or text, UTC) or ISO 8601 text -> Unix seconds.

    exporter.parsing's Timestamp would read 20230330202812 as epoch milliseconds (a date in
    2034), so CloudAlly's times have a parser of their own; other digit strings (the public
    example 202303345630202812) are refused rather than guessed at."""
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("not a time")
    text = value.strip()
    if not text:
        return None
    if not text.isascii():
        raise ValueError("not a time")
    try:
        if text.isdigit():
            if len(text) != COMPACT_DIGITS:
                raise ValueError("not yyyymmddhhmmss")
            return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp()
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except OverflowError:
        raise ValueError("not a time") from None


CloudAllyTime = Annotated[
    float | None,
    BeforeValidator(_cloudally_time),
    AfterValidator(plausible),
    WrapValidator(lenient),
]
# One malformed date drops that date (counted), not the other sources' dates.
BackupDates = Annotated[dict[str, CloudAllyTime] | None, WrapValidator(lenient)]


class TaskRecord(VendorModel):
    id: Text = alias("id", "taskId")
    # live: the task kind (BACKUP); the spec listing holds backup tasks only.
    kind: Text = alias("type", "taskType", "kind")
    source: Text = alias("source", "service", "serviceType")
    customer_id: Text = alias("customerId", "accountId", "userId")
    customer_name: Text = alias("customerName", "accountName", "userEmail", "account", "email")
    domain: Text = None
    status: Text = alias("status", "lastBackupStatus")
    last_backup: CloudAllyTime = alias(
        "lastBackupDate", "lastBackup", "lastRunTime", "lastBackupTime"
    )
    last_backup_dates: BackupDates = alias("lastBackupDates")
    next_backup: Text = alias("nextBackup")
    size: Float = None
    # null, or {current, state, service, cancelled} of undocumented meaning: only its state
    # word is kept, to be shown as given.
    progress: RawDict = None

    @property
    def progress_state(self) -> str | None:
        if self.progress is None or self.progress.get("cancelled") is True:
            return None
        state = self.progress.get("state")
        return valid_text(state.strip()) or None if isinstance(state, str) else None

    @property
    def service(self) -> str | None:
        """What is backed up. A spec task without ``source`` may name it in ``type``; a live
        task's ``type`` is its kind (BACKUP), never a service."""
        if self.source:
            return self.source
        return None if snake_case(self.kind) == "backup" else self.kind

    def newest_backup(self) -> float | None:
        """The task's own source's date, else the newest of the others, else the spec field."""
        dates = self.last_backup_dates or {}
        own = dates.get(self.source or "")
        if own is not None:
            return own
        known = [d for d in dates.values() if d is not None]
        return max(known) if known else self.last_backup


class JobRecord(VendorModel):
    id: Text = alias("jobId", "id", "taskId")
    kind: Text = alias("type", "taskType", "kind")
    customer_id: Text = alias("customerId", "accountId", "userId")
    created: CloudAllyTime = alias(
        "createdAt", "createDate", "created", "creationDate", "startTime"
    )


class JobStatusRecord(VendorModel):
    status: Text = alias("status", "state")
    started: CloudAllyTime = alias("startTime", "startedAt", "createdAt", "startDate")
    ended: CloudAllyTime = alias("endTime", "finishedAt", "completedAt", "endDate")


class StatusEntry(VendorModel):
    # `error` and `errFAQLink` are vendor text that may quote an account's details: not read.
    sub_source: Text = alias("subSource")
    status: Text = None


class StatusRecord(VendorModel):
    task_id: Text = alias("taskId")
    customer_id: Text = alias("userId", "customerId", "accountId")
    source: Text = None
    last_backup: CloudAllyTime = alias("lastBackupDate")
    entries: RawList = alias("backupStatus")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What /v1/partners/status says of one task."""

    failed: bool
    last_backup: float | None


@dataclass(frozen=True, slots=True)
class Statuses:
    """/v1/partners/status by task id, and by (user, source) for records without a task id.
    ``offered`` is False where the API has no such endpoint (404)."""

    offered: bool
    by_task: dict[str, Outcome]
    by_source: dict[tuple[str, str], Outcome]

    def of(self, task: TaskRecord) -> Outcome | None:
        found = self.by_task.get(task.id or "")
        if found is None:
            found = self.by_source.get((task.customer_id or "", task.source or ""))
        return found


def _merge(old: Outcome | None, new: Outcome) -> Outcome:
    if old is None:
        return new
    dates = [d for d in (old.last_backup, new.last_backup) if d is not None]
    return Outcome(old.failed or new.failed, max(dates) if dates else None)


def statuses_from(items: list[Any], problems: Problems) -> Statuses:
    by_task: dict[str, Outcome] = {}
    by_source: dict[tuple[str, str], Outcome] = {}
    records = parse_records(
        items, StatusRecord, problems, "partners/status", lambda r: bool(r.task_id or r.source)
    )
    for record in records:
        entries = parse_records(record.entries or [], StatusEntry, problems, "backupStatus")
        outcome = Outcome(
            any(snake_case(e.status) == STATUS_FAILED for e in entries), record.last_backup
        )
        if record.task_id:
            by_task[record.task_id] = _merge(by_task.get(record.task_id), outcome)
        else:
            key = (record.customer_id or "", record.source or "")
            by_source[key] = _merge(by_source.get(key), outcome)
    return Statuses(True, by_task, by_source)


def split_partner_tasks(
    items: list[Any], problems: Problems
) -> tuple[list[TaskRecord], list[JobRecord]]:
    """/v1/partners/tasks into backup tasks and restore/download jobs; other kinds (user
    activations and the like) are dropped uncounted: they are valid, just not ours."""
    backups: list[Any] = []
    jobs: list[Any] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.add(f"partners/tasks[{index}]", "not an object")
            continue
        kind = next((item[k] for k in ("type", "taskType", "kind") if k in item), None)
        word = snake_case(kind) if isinstance(kind, str) else UNKNOWN
        if word == "backup":
            backups.append(item)
        elif job_kind(word) is not None:
            jobs.append(item)
    return (
        parse_records(backups, TaskRecord, problems, "partners/tasks", lambda r: bool(r.id)),
        parse_records(jobs, JobRecord, problems, "partners/tasks", lambda r: bool(r.id)),
    )


def job_kind(value: str | None) -> str | None:
    """restore / download, or None for partner tasks that are neither."""
    word = snake_case(value)
    for needle, kind in JOB_KINDS.items():
        if needle in word:
            return kind
    return None


def outcome_status(value: str | None) -> str:
    return OUTCOMES.get(snake_case(value), UNKNOWN)


def task_enabled(value: str | None) -> bool | None:
    return TASK_ENABLED.get(snake_case(value))


def live_status(task: TaskRecord, statuses: Statuses | None) -> str:
    """A live task's last backup status: failed if /v1/partners/status reports FAILED for it;
    success if it reports the task without a failure and the task has been backed up; unknown
    when never backed up, when the task is not reported, or when the status is unavailable."""
    outcome = statuses.of(task) if statuses is not None else None
    if outcome is None:
        return UNKNOWN
    if outcome.failed:
        return "failed"
    backed_up = task.newest_backup() is not None or outcome.last_backup is not None
    return "success" if backed_up else UNKNOWN


def spec_status(task: TaskRecord) -> tuple[str, bool | None]:
    """A spec task's (status, enabled). Its `status` is an outcome word of the unofficial
    schema (`paused` also switches the task off), or else perhaps a live task state (ACTIVE:
    enabled, which says nothing of the outcome)."""
    status = outcome_status(task.status)
    if status != UNKNOWN:
        return status, (False if status == "paused" else None)
    return UNKNOWN, task_enabled(task.status)


PRODUCT_HINTS: Final = (
    (
        (
            "exchange",
            "sharepoint",
            "one_drive",
            "onedrive",
            "teams",
            "office",
            "ms_",
            "ms365",
            "o365",
        ),
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


def token_from(body: Any, what: str, problems: Problems) -> Token:
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict):
        raise wrong_shape(problems, what)
    access = next(
        (body[k] for k in ("accessToken", "access_token", "token") if isinstance(body.get(k), str)),
        None,
    )
    if not access:
        raise VendorError(f"{what}: no access token in the response")
    # It goes out in a header, which takes printable ASCII only.
    if not _printable(access):
        problems.add(what, "access token not printable ASCII")
        raise VendorError(f"{what}: the access token is not printable ASCII")
    refresh = next(
        (body[k] for k in ("refreshToken", "refresh_token") if isinstance(body.get(k), str)),
        None,
    )
    if refresh is not None and not _printable(refresh):
        problems.add(what, "refresh token not printable ASCII")
        refresh = None
    lifetime = next(
        (body[k] for k in ("expiresIn", "expires_in") if k in body),
        DEFAULT_TOKEN_LIFETIME,
    )
    if not _lifetime(lifetime):
        lifetime = DEFAULT_TOKEN_LIFETIME
    return Token(access, time.monotonic() + float(lifetime), refresh)


def _printable(token: str) -> bool:
    return token.isascii() and token.isprintable()


def _lifetime(value: object) -> bool:
    """Seconds a token lives, as a vendor may say it; a year at most."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 < value <= 366 * 86400


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

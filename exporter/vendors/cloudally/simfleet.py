"""The simulated CloudAlly partner: its customers' backup tasks and restore jobs, and how each is
written in the spec's shape and in the live API's shape.

Times are ages before "now", so the fleet looks equally realistic whenever it is served.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from exporter.simulator.fleet import DAY, HOUR
from exporter.simulator.world import World

# The spec shape's invented service names, and the live API's `source` values.
SPEC_MICROSOFT: Final = ("MS_EXCHANGE", "MS_ONEDRIVE", "MS_SHAREPOINT", "MS_TEAMS")
SPEC_GOOGLE: Final = ("GOOGLE_MAIL", "GOOGLE_DRIVE")
LIVE_MICROSOFT: Final = ("MS365", "SHAREPOINT_MULTI")
LIVE_GOOGLE: Final = ("GMAIL", "GDRIVE")
FAILED_ERROR: Final = "Access to the account was revoked; re-authorize the backup task"
MALFORMED_DATE: Final = 202303345630202812  # the 18-digit value of a public example


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ts: float) -> str:
    """The live API's ``createDate`` style: ``2021-01-07T11:44:57.000Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def compact(ts: float) -> int:
    """The live API's ``lastBackupDates`` value: yyyymmddhhmmss in UTC, as a number."""
    return int(datetime.fromtimestamp(ts, UTC).strftime("%Y%m%d%H%M%S"))


@dataclass
class Task:
    id: str
    customer_id: str
    customer_name: str
    email: str
    alias: str
    service: str
    # spec: an outcome word (success, failed, in_progress, ...); live: ACTIVE, PAUSED, ARCHIVED.
    status: str
    # None: never backed up (live: `lastBackupDates: {}`).
    backup_age: float | None
    # live /v1/partners/status backupStatus[].status: ACTIVE, ARCHIVED or FAILED (with error).
    outcome: str = "ACTIVE"
    error: str | None = None
    size: int = 0
    next_backup: str = "In 6 hours"
    progress: dict[str, Any] | None = None
    created_age: float = 400 * DAY
    # Served in lastBackupDates after the task's own date (tests plant malformed values here).
    extra_dates: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    id: str
    customer_id: str
    kind: str
    created: float
    queued_for: float
    runs_for: float  # math.inf: stuck
    outcome: str

    def status(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed < self.queued_for:
            return "pending"
        if elapsed < self.queued_for + self.runs_for:
            return "in_progress"
        return self.outcome

    def started(self, now: float) -> float | None:
        start = self.created + self.queued_for
        return start if now >= start else None

    def ended(self, now: float) -> float | None:
        end = self.created + self.queued_for + self.runs_for
        return end if now >= end else None


@dataclass
class CloudAllyFleet:
    tasks: list[Task]
    jobs: list[Job]
    # Whether tasks are written the live way (shapes live and mixed).
    live: bool
    # The reply key that carries the next page's token; a test sets "nextPage", as one client
    # expects.
    next_key: str = "nextPageToken"

    def job(self, job_id: str) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def display_name(self, customer_id: str) -> str:
        """The customer's name as the exporter shows it: the live API names a customer only by
        its user's email."""
        task = next(t for t in self.tasks if t.customer_id == customer_id)
        return task.email if self.live else task.customer_name

    def heal(self) -> None:
        for task in self.tasks:
            task.status = "ACTIVE" if self.live else "success"
            task.backup_age = 3 * HOUR
            task.outcome, task.error, task.progress = "ACTIVE", None, None
            task.extra_dates = {}
        for job in self.jobs:
            job.outcome = "success"
            if math.isinf(job.runs_for):
                job.runs_for = 600


def _email(name: str) -> str:
    return f"admin@{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.example"


def generate(world: World) -> CloudAllyFleet:
    """Tasks for half as many customers as the shared fleet has (at least three), taken from
    the front of the fleet; the live and mixed shapes write them the live way."""
    rng = random.Random(world.seed * 7919 + 3)
    live = world.shape != "spec"
    tasks: list[Task] = []
    ids = []
    for index, name in enumerate(world.customer_names(max(3, world.customers // 2))):
        cid = f"acc-{9001 + index}"
        ids.append(cid)
        if live:
            services = list(LIVE_MICROSOFT if index % 3 else LIVE_GOOGLE)
            # A second SharePoint task (another tenant): told apart by its task id.
            services += ["SHAREPOINT_MULTI"] if index == 1 else []
            services += ["DROPBOX"] if index % 3 == 2 else []
        else:
            services = list(SPEC_MICROSOFT if index % 3 else SPEC_GOOGLE)
        for number, service in enumerate(services):
            label = service.replace("_", " ").title()
            tasks.append(
                Task(
                    id=f"tsk-{9001 + index}-{number}",
                    customer_id=cid,
                    customer_name=name,
                    email=_email(name),
                    alias=f"{name} {label}",
                    service=service,
                    status="ACTIVE" if live else "success",
                    backup_age=rng.uniform(1 * HOUR, 12 * HOUR),
                    size=rng.randint(50, 500_000) * 1_048_576,
                    next_backup=f"In {rng.randint(1, 23)} hours",
                )
            )
    if live:
        _live_conditions(tasks)
    else:
        _spec_conditions(tasks)
    return CloudAllyFleet(tasks, _jobs(world.start, ids), live)


def _spec_conditions(tasks: list[Task]) -> None:
    # One of each condition an operator must notice.
    tasks[1].status, tasks[1].backup_age = "failed", 30 * HOUR
    tasks[-1].status = "in_progress"
    tasks[-2].status, tasks[-2].backup_age = "paused", 4 * DAY
    tasks[len(tasks) // 2].status = "RETRYING"  # undocumented: becomes `unknown`


def _live_conditions(tasks: list[Task]) -> None:
    """One of each condition an operator must notice (there are at least eight tasks)."""
    failed = tasks[1]
    failed.outcome, failed.error, failed.backup_age = "FAILED", FAILED_ERROR, 30 * HOUR
    tasks[2].backup_age = 3 * DAY  # enabled, and stale
    never = tasks[-1]
    never.backup_age, never.next_backup = None, "In 1 hour"
    never.progress = {
        "current": 0,
        "state": "PREPARE",
        "service": never.service,
        "cancelled": False,
    }
    tasks[-2].status, tasks[-2].backup_age = "PAUSED", 4 * DAY
    archived = tasks[-3]
    archived.status, archived.outcome, archived.backup_age = "ARCHIVED", "ARCHIVED", 20 * DAY


def _jobs(start: float, ids: list[str]) -> list[Job]:
    first, second = ids[0], ids[1 % len(ids)]
    return [
        Job("rst-1001", first, "RESTORE", start - 2 * HOUR, 60, 1800, "success"),
        Job("rst-1002", second, "DOWNLOAD", start - 1800, 30, 3 * HOUR, "success"),
        Job("rst-1003", first, "RESTORE", start - 5 * HOUR, 120, 1200, "failed"),
        Job("rst-1004", second, "RESTORE", start - 26 * HOUR, 60, math.inf, "success"),
        Job("rst-1005", first, "RESTORE", start, 20, 40, "success"),
        Job("rst-0999", second, "RESTORE", start - 10 * DAY, 60, 600, "success"),
        Job("act-2001", first, "USER_ACTIVATION", start - HOUR, 0, 10, "success"),
    ]


def spec_task(t: Task, now: float) -> dict[str, Any]:
    return {
        "id": t.id,
        "accountId": t.customer_id,
        "accountName": t.customer_name,
        "alias": t.alias,
        "source": t.service,
        "status": t.status,
        "lastBackupDate": None if t.backup_age is None else iso(now - t.backup_age),
    }


def live_task(t: Task, now: float) -> dict[str, Any]:
    """A backup task as the live /v1/partners/tasks writes it (field for field the public
    example)."""
    dates = {} if t.backup_age is None else {t.service: compact(now - t.backup_age)}
    entities = 5 if t.service.endswith("_MULTI") else 1
    return {
        "id": t.id,
        "account": t.email,
        "type": "BACKUP",
        "source": t.service,
        "userId": t.customer_id,
        "domain": None,
        "status": t.status,
        "region": "EU_F",
        "alias": t.alias,
        "backupTaskId": None,
        "index": True,
        "snapshotDate": None,
        "lastBackupDates": {**dates, **t.extra_dates},
        "nextBackup": t.next_backup,
        "progress": t.progress,
        "size": t.size,
        "createDate": iso_ms(now - t.created_age),
        "numOfBilledEntities": entities,
        "numOfEntities": entities,
        "userEmail": t.email,
        "multiEntitiesTask": entities > 1,
    }


def job_row(j: Job, live: bool) -> dict[str, Any]:
    # No public example of a live restore or download task exists: its fields are assumed to
    # follow the backup task's (userId, createDate).
    if live:
        return {
            "id": j.id,
            "type": j.kind,
            "userId": j.customer_id,
            "createDate": iso_ms(j.created),
        }
    return {"id": j.id, "type": j.kind, "customerId": j.customer_id, "createdAt": iso(j.created)}


def status_row(t: Task, now: float) -> dict[str, Any]:
    """One task in /v1/partners/status."""
    last = None if t.backup_age is None else iso_ms(now - t.backup_age)
    # A failed task has tried again since its last good backup.
    attempt = iso_ms(now - HOUR) if t.outcome == "FAILED" else last
    return {
        "userId": t.customer_id,
        "taskId": t.id,
        "source": t.service,
        "entityName": t.alias,
        "lastBackupDate": last,
        "lastBackupAttemptDate": attempt,
        "backupDuration": 640,
        "size": t.size,
        "backupStatus": [
            {
                "subSource": t.service,
                "status": t.outcome,
                "error": t.error,
                "errFAQLink": None if t.error is None else "https://support.cloudally.com/faq",
            }
        ],
    }

"""CloudAlly's fake API: partner login (spec body or live headers), one-time refresh tokens,
page-token pagination, and restore jobs that move from pending to running to an outcome as time
passes."""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from exporter.simulator.fleet import DAY, HOUR
from exporter.simulator.routes import VendorRoute, error
from exporter.simulator.tokens import TokenStore
from exporter.simulator.world import Trouble, World

MICROSOFT: Final = ("MS_EXCHANGE", "MS_ONEDRIVE", "MS_SHAREPOINT", "MS_TEAMS")
GOOGLE: Final = ("GOOGLE_MAIL", "GOOGLE_DRIVE")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Task:
    id: str
    customer_id: str
    customer_name: str
    alias: str
    service: str
    status: str
    backup_age: float


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

    def job(self, job_id: str) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)


def generate(world: World) -> CloudAllyFleet:
    """Tasks for half as many customers as the shared fleet has (at least three), taken from
    the front of the fleet."""
    rng = random.Random(world.seed * 7919 + 3)
    start = world.start
    tasks = []
    ids = []
    for index, name in enumerate(world.customer_names(max(3, world.customers // 2))):
        cid = f"acc-{9001 + index}"
        ids.append(cid)
        services = MICROSOFT if index % 3 else GOOGLE
        for number, service in enumerate(services):
            tasks.append(
                Task(
                    id=f"tsk-{9001 + index}-{number}",
                    customer_id=cid,
                    customer_name=name,
                    alias=f"{name} {service.split('_', 1)[1].title()}",
                    service=service,
                    status="success",
                    backup_age=rng.uniform(1 * HOUR, 12 * HOUR),
                )
            )
    # One of each condition an operator must notice.
    tasks[1].status, tasks[1].backup_age = "failed", 30 * HOUR
    tasks[-1].status = "in_progress"
    tasks[-2].status, tasks[-2].backup_age = "paused", 4 * DAY
    tasks[len(tasks) // 2].status = "RETRYING"  # undocumented: becomes `unknown`
    first, second = ids[0], ids[1 % len(ids)]
    jobs = [
        Job("rst-1001", first, "RESTORE", start - 2 * HOUR, 60, 1800, "success"),
        Job("rst-1002", second, "DOWNLOAD", start - 1800, 30, 3 * HOUR, "success"),
        Job("rst-1003", first, "RESTORE", start - 5 * HOUR, 120, 1200, "failed"),
        Job("rst-1004", second, "RESTORE", start - 26 * HOUR, 60, math.inf, "success"),
        Job("rst-1005", first, "RESTORE", start, 20, 40, "success"),
        Job("rst-0999", second, "RESTORE", start - 10 * DAY, 60, 600, "success"),
        Job("act-2001", first, "USER_ACTIVATION", start - HOUR, 0, 10, "success"),
    ]
    return CloudAllyFleet(tasks, jobs)


class CloudAllySim:
    """Backup tasks of customers of its own, and restore jobs that move from pending to running
    to an outcome as time passes."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.fleet = generate(world)
        self.tokens = TokenStore(world.token_ttl)

    def heal(self) -> None:
        for task in self.fleet.tasks:
            task.status = "success"
            task.backup_age = 3 * HOUR
        for job in self.fleet.jobs:
            job.outcome = "success"
            if math.isinf(job.runs_for):
                job.runs_for = 600

    def incident(self) -> list[Trouble]:
        job = self.fleet.jobs[2]
        job.outcome, job.created, job.runs_for = "failed", self.world.start - 3 * HOUR, 1200
        name = next(t.customer_name for t in self.fleet.tasks if t.customer_id == job.customer_id)
        return [Trouble("failed_restore", job.customer_id, name, job.id)]

    def routes(self) -> list[VendorRoute]:
        return _routes(self.world, self.fleet, self.tokens)


def _routes(world: World, fleet: CloudAllyFleet, tokens: TokenStore) -> list[VendorRoute]:
    keys = world.credentials

    def auth(request: Request) -> bool:
        return tokens.valid(request.headers.get("authorization"))

    def issued() -> dict[str, Any]:
        access, refresh = tokens.issue()
        return {"accessToken": access, "refreshToken": refresh, "expiresIn": tokens.ttl}

    async def partner_login(request: Request, now: float) -> Any:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        client_id = request.headers.get("client-id") or body.get("clientId") or ""
        secret = request.headers.get("client-secret") or body.get("clientSecret") or ""
        if not (
            isinstance(client_id, str)
            and isinstance(secret, str)
            and secrets.compare_digest(client_id, keys.client_id)
            and secrets.compare_digest(secret, keys.client_secret)
        ):
            return error(401, "invalid client credentials")
        return issued()

    async def refresh(request: Request, now: float) -> Any:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        token = body.get("refreshToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not tokens.redeem(token):
            return error(401, "invalid refresh token")
        return issued()

    async def backup_tasks(request: Request, now: float) -> Any:
        try:
            size = max(1, int(request.query_params.get("pageSize", "50")))
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            return error(400, "page and pageSize must be integers")
        token = request.query_params.get("nextPageToken")
        if token:
            if not token.startswith("pt-") or not token[3:].isdigit():
                return error(400, "bad nextPageToken")
            page = int(token[3:])
        pages = max(1, math.ceil(len(fleet.tasks) / size))
        chosen = fleet.tasks[(page - 1) * size : page * size]
        next_token = f"pt-{page + 1}" if page < pages else None
        fault = getattr(request.state, "fault", None)
        if fault is not None and fault.kind == "link_cycle" and page == pages:
            next_token = "pt-1"
        return {
            "data": [
                {
                    "id": t.id,
                    "accountId": t.customer_id,
                    "accountName": t.customer_name,
                    "alias": t.alias,
                    "source": t.service,
                    "status": t.status,
                    "lastBackupDate": iso(now - t.backup_age),
                }
                for t in chosen
            ],
            "page": page,
            "totalPages": pages,
            "nextPageToken": next_token,
        }

    async def partner_tasks(request: Request, now: float) -> Any:
        visible = [j for j in fleet.jobs if j.created <= now]
        return {
            "data": [
                {
                    "id": j.id,
                    "type": j.kind,
                    "customerId": j.customer_id,
                    "createdAt": iso(j.created),
                }
                for j in visible
            ]
        }

    async def restore_status(request: Request, now: float) -> Any:
        job = fleet.job(request.path_params["job_id"])
        if job is None or job.kind == "USER_ACTIVATION":
            return error(404, "job not found")
        started, ended = job.started(now), job.ended(now)
        return JSONResponse(
            {
                "jobId": job.id,
                "status": job.status(now),
                "startTime": None if started is None else iso(started),
                "endTime": None if ended is None else iso(ended),
            }
        )

    return [
        VendorRoute("/auth/partner", "auth", partner_login, None, methods=("POST",)),
        VendorRoute("/auth/refresh", "refresh", refresh, None, methods=("POST",)),
        VendorRoute("/v1/backup-tasks", "backup_tasks", backup_tasks, auth),
        VendorRoute("/v1/partners/tasks", "partner_tasks", partner_tasks, auth),
        VendorRoute("/v1/restore/{job_id}", "restore", restore_status, auth),
    ]

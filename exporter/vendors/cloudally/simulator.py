"""CloudAlly's fake API: partner login (spec body or live headers), one-time refresh tokens,
page-token pagination, and restore jobs that move from pending to running to an outcome as time
passes.

What each shape (``World.shape``) serves:

- ``spec``: the documents' shapes. Backup tasks in ``/v1/backup-tasks`` (outcome statuses, ISO
  dates); ``/v1/partners/tasks`` holds only restore, download and other non-backup tasks; no
  ``/v1/partners/status`` (404). Client headers are not needed.
- ``live``: what public clients meet. ``/v1/partners/tasks`` lists the backup tasks first
  (``type: BACKUP``, ``source``, ``status`` ACTIVE/PAUSED/ARCHIVED, ``lastBackupDates`` as
  yyyymmddhhmmss numbers, ``{}`` when never backed up), then restore and download tasks;
  ``/v1/partners/status`` reports per task ``backupStatus`` (one FAILED, with an error); there is
  no ``/v1/backup-tasks`` (404). Data calls without the ``client-id``/``client-secret`` headers
  are refused (401), and a header login must carry ``{email, password}``.
- ``mixed``: an API offering both generations over the same, live-written tasks:
  ``/v1/backup-tasks`` in the spec's form beside the live ``/v1/partners/tasks`` and
  ``/v1/partners/status``. Client headers are optional (checked when sent). A client that read
  both listings would count every task twice.
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from exporter.simulator.routes import VendorRoute, error
from exporter.simulator.tokens import TokenStore
from exporter.simulator.world import Trouble, World
from exporter.vendors.cloudally.simfleet import (
    CloudAllyFleet,
    Job,
    Task,
    generate,
    iso,
    job_row,
    live_task,
    spec_task,
    status_row,
)

__all__ = ["DEMO_EMAIL", "DEMO_PASSWORD", "CloudAllySim", "Job", "Task"]

# The demo's partner user. The simulator checks that a header login sends one, not its value.
DEMO_EMAIL: Final = "demo@example.com"
DEMO_PASSWORD: Final = "demo-password"
DEFAULT_PAGE_SIZE: Final = 50


class CloudAllySim:
    """Backup tasks of customers of its own, and restore jobs that move from pending to running
    to an outcome as time passes."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.fleet = generate(world)
        self.tokens = TokenStore(world.token_ttl)

    def heal(self) -> None:
        self.fleet.heal()

    def incident(self) -> list[Trouble]:
        job = self.fleet.jobs[2]
        job.outcome, job.created, job.runs_for = "failed", self.world.start - 3 * 3600, 1200
        name = self.fleet.display_name(job.customer_id)
        return [Trouble("failed_restore", job.customer_id, name, job.id)]

    def routes(self) -> list[VendorRoute]:
        return _routes(self.world, self.fleet, self.tokens)


def _same(given: object, expected: str) -> bool:
    return isinstance(given, str) and secrets.compare_digest(given, expected)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


def _paged(request: Request, items: list[Any], fleet: CloudAllyFleet) -> Any:
    """One page of ``items``: ``page``/``pageSize`` or a ``nextPageToken`` (``nextPage`` is
    taken too, as one client sends it); ``{page, totalPages, total, nextPageToken, data}``."""
    try:
        size = max(1, int(request.query_params.get("pageSize", str(DEFAULT_PAGE_SIZE))))
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return error(400, "page and pageSize must be integers")
    token = request.query_params.get("nextPageToken") or request.query_params.get("nextPage")
    if token:
        if not token.startswith("pt-") or not token[3:].isdigit():
            return error(400, "bad nextPageToken")
        page = int(token[3:])
    pages = max(1, math.ceil(len(items) / size))
    next_token = f"pt-{page + 1}" if page < pages else None
    fault = getattr(request.state, "fault", None)
    if fault is not None and fault.kind == "link_cycle" and pages > 1 and page == pages - 1:
        # Back to the start before the end is reached: only the tokens reveal the cycle.
        next_token = "pt-1"
    return {
        "page": page,
        "totalPages": pages,
        "total": len(items),
        fleet.next_key: next_token,
        "data": items[(page - 1) * size : page * size],
    }


def _routes(world: World, fleet: CloudAllyFleet, tokens: TokenStore) -> list[VendorRoute]:
    keys = world.credentials

    def auth(request: Request) -> bool:
        if not tokens.valid(request.headers.get("authorization")):
            return False
        if world.shape == "spec":
            return True
        client_id = request.headers.get("client-id")
        secret = request.headers.get("client-secret")
        if client_id is None and secret is None:
            return world.shape != "live"
        return _same(client_id, keys.client_id) and _same(secret, keys.client_secret)

    def issued() -> dict[str, Any]:
        access, refresh = tokens.issue()
        return {
            "accessToken": access,
            "tokenType": "Bearer",
            "refreshToken": refresh,
            "expiresIn": tokens.ttl,
        }

    async def partner_login(request: Request, now: float) -> Any:
        body = await _json_body(request)
        in_headers = "client-id" in request.headers
        client_id = request.headers.get("client-id") or body.get("clientId")
        secret = request.headers.get("client-secret") or body.get("clientSecret")
        if not (_same(client_id, keys.client_id) and _same(secret, keys.client_secret)):
            return error(401, "invalid client credentials")
        if in_headers and world.shape == "live":
            email, password = body.get("email"), body.get("password")
            if not (isinstance(email, str) and email and isinstance(password, str) and password):
                return error(401, "email and password required")
        return issued()

    async def refresh(request: Request, now: float) -> Any:
        token = (await _json_body(request)).get("refreshToken")
        if not isinstance(token, str) or not tokens.redeem(token):
            return error(401, "invalid refresh token")
        return issued()

    async def backup_tasks(request: Request, now: float) -> Any:
        if world.shape == "live":
            return error(404, "Not Found")
        return _paged(request, [spec_task(t, now) for t in fleet.tasks], fleet)

    async def partner_tasks(request: Request, now: float) -> Any:
        # Backup tasks first, then everything else, as the live API lists them.
        rows = [live_task(t, now) for t in fleet.tasks] if fleet.live else []
        rows += [job_row(j, fleet.live) for j in fleet.jobs if j.created <= now]
        return _paged(request, rows, fleet)

    async def partner_status(request: Request, now: float) -> Any:
        if world.shape == "spec":
            return error(404, "Not Found")
        return _paged(request, [status_row(t, now) for t in fleet.tasks], fleet)

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
        VendorRoute("/v1/partners/status", "partner_status", partner_status, auth),
        VendorRoute("/v1/restore/{job_id}", "restore", restore_status, auth),
    ]

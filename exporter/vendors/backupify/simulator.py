"""Legacy Backupify v1's fake API: OAuth2 client credentials, Link-paginated lists, and backups that
start and finish as time passes.

The v1 API has no published response schema; the simulator serves the shapes the exporter
assumes, alternating the documented field-name alternates (status/state, started_at/created_at,
finished_at/completed_at) between instances.
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse

from exporter.simulator.fleet import HOUR
from exporter.simulator.routes import VendorRoute, error, page_links
from exporter.simulator.tokens import TokenStore
from exporter.simulator.world import Trouble, World

PER_PAGE: Final = 20
PERIOD: Final = 6 * HOUR
KEPT: Final = 45
DEFINITIONS: Final = ((1, "Google Apps"), (2, "Office 365"))


@dataclass
class Instance:
    id: int
    index: int
    customer_id: int
    customer_name: str
    name: str
    definition_id: int
    status: str
    phase: float
    duration: float
    # A backup that started here (Unix time) and never finishes.
    stuck_since: float | None = None
    newest_status: str | None = None
    legacy_fields: bool = False


@dataclass
class BackupifyFleet:
    instances: list[Instance]

    def instance(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances if str(i.id) == instance_id), None)


def generate(world: World) -> BackupifyFleet:
    """Instances for half as many customers as the shared fleet has (at least three), taken
    from the back of the fleet."""
    rng = random.Random(world.seed * 7919 + 2)
    count = max(3, world.customers // 2)
    instances = []
    for index, name in enumerate(
        world.customer_names(count, offset=len(world.fleet.customers) - count)
    ):
        definition_id, product = DEFINITIONS[index % 2]
        instances.append(
            Instance(
                id=7001 + index,
                index=index,
                customer_id=3001 + index,
                customer_name=name,
                name=f"{name} ({product})",
                definition_id=definition_id,
                status="active",
                phase=rng.uniform(0, PERIOD),
                duration=rng.uniform(0.3 * HOUR, 1.2 * HOUR),
                legacy_fields=index % 2 == 1,
            )
        )
    if instances:
        instances[0].stuck_since = world.start - 20 * HOUR
    if len(instances) > 1:
        instances[1].newest_status = "verifying"  # a status nobody documented
    if len(instances) > 2:
        instances[2].newest_status = "failed"
    return BackupifyFleet(instances)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _backup(
    inst: Instance, backup_id: int, started: float, ended: float | None, status: str
) -> dict[str, Any]:
    started_key, ended_key, status_key = (
        ("created_at", "completed_at", "state")
        if inst.legacy_fields
        else ("started_at", "finished_at", "status")
    )
    return {
        "id": backup_id,
        "backup_instance_id": inst.id,
        status_key: status,
        started_key: iso(started),
        ended_key: None if ended is None else iso(ended),
    }


def backups(inst: Instance, now: float) -> list[dict[str, Any]]:
    """The instance's backups in ascending id order, as they stand at ``now``."""
    latest = math.floor((now - inst.phase) / PERIOD)
    out = []
    last_k = latest - KEPT
    for k in range(latest - KEPT + 1, latest + 1):
        started = inst.phase + k * PERIOD
        if inst.stuck_since is not None and started >= inst.stuck_since:
            break
        last_k = k
        ended = started + inst.duration
        if ended > now:
            out.append(_backup(inst, k * 100 + inst.index, started, None, "running"))
        else:
            status = "completed" if k % 9 else "completed_with_errors"
            out.append(_backup(inst, k * 100 + inst.index, started, ended, status))
    if inst.newest_status is not None:
        finished = [b for b in out if b.get("finished_at", b.get("completed_at"))]
        if finished:
            key = "state" if inst.legacy_fields else "status"
            finished[-1][key] = inst.newest_status
    if inst.stuck_since is not None:
        out.append(
            _backup(inst, (last_k + 1) * 100 + inst.index, inst.stuck_since, None, "running")
        )
    return out


def _paged(request: Request, items: list[Any]) -> JSONResponse:
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, math.ceil(len(items) / PER_PAGE))
    fault = getattr(request.state, "fault", None)
    next_url = None
    if fault is not None and fault.kind == "link_cycle" and page == pages:
        next_url = str(request.url.include_query_params(page=1))
    elif fault is not None and fault.kind == "cross_origin" and page == pages:
        next_url = f"{fault.origin.rstrip('/')}{request.url.path}?page={page + 1}"
    headers = {"Link": page_links(request, page, pages, next_url=next_url)}
    return JSONResponse(items[(page - 1) * PER_PAGE : page * PER_PAGE], headers=headers)


class BackupifySim:
    """Backup instances of customers of its own, with backups that start and finish as time
    passes."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.fleet = generate(world)
        self.tokens = TokenStore(world.token_ttl)

    def heal(self) -> None:
        for instance in self.fleet.instances:
            instance.stuck_since = None
            instance.newest_status = None

    def incident(self) -> list[Trouble]:
        instance = self.fleet.instances[0]
        instance.stuck_since = self.world.start - 20 * HOUR
        return [
            Trouble(
                "long_backup", str(instance.customer_id), instance.customer_name, str(instance.id)
            )
        ]

    def routes(self) -> list[VendorRoute]:
        return _routes(self.world, self.fleet, self.tokens)


def _routes(world: World, fleet: BackupifyFleet, tokens: TokenStore) -> list[VendorRoute]:
    keys = world.credentials

    def auth(request: Request) -> bool:
        return tokens.valid(request.headers.get("authorization"))

    async def token(request: Request, now: float) -> Any:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if not (
            secrets.compare_digest(form.get("client_id", ""), keys.client_id)
            and secrets.compare_digest(form.get("client_secret", ""), keys.client_secret)
        ):
            return JSONResponse({"error": "invalid_client"}, 401)
        access, _ = tokens.issue()
        return {"access_token": access, "expires_in": tokens.ttl, "token_type": "bearer"}

    async def definitions(request: Request, now: float) -> Any:
        return _paged(request, [{"id": i, "name": n, "published": True} for i, n in DEFINITIONS])

    async def instances(request: Request, now: float) -> Any:
        wanted = request.query_params.get("backup_definition_id")
        chosen = [i for i in fleet.instances if wanted is None or str(i.definition_id) == wanted]
        return _paged(
            request,
            [
                {
                    "id": i.id,
                    "customer_id": i.customer_id,
                    "customer_name": i.customer_name,
                    "name": i.name,
                    "backup_definition_id": i.definition_id,
                    ("state" if i.legacy_fields else "status"): i.status,
                    "backup_frequency": "4x_daily",
                }
                for i in chosen
            ],
        )

    async def instance_backups(request: Request, now: float) -> Any:
        inst = fleet.instance(request.path_params["instance_id"])
        if inst is None:
            return error(404, "backup_instance not found")
        return _paged(request, backups(inst, now))

    async def active(request: Request, now: float) -> Any:
        inst = fleet.instance(request.path_params["instance_id"])
        if inst is None:
            return error(404, "backup_instance not found")
        running = [b for b in backups(inst, now) if b.get("status", b.get("state")) == "running"]
        if not running:
            return error(404, "no active backup")
        return running[-1]

    return [
        VendorRoute("/oauth/token", "token", token, None, methods=("POST",)),
        VendorRoute("/v1/backup_definitions", "definitions", definitions, auth),
        VendorRoute("/v1/backup_instances", "instances", instances, auth),
        VendorRoute(
            "/v1/backup_instances/{instance_id}/backups/active", "active_backup", active, auth
        ),
        VendorRoute(
            "/v1/backup_instances/{instance_id}/backups", "backups", instance_backups, auth
        ),
    ]

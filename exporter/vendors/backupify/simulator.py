"""Legacy Backupify v1's fake API: OAuth2 client credentials, Link-paginated lists, backups that
start and finish as time passes, and exports.

It answers in the world's shape (see ``simfleet``): the spec shape (the fields the exporter
assumed before the swagger was found) or the swagger's, with the quirks the swagger documents:

- ``/oauth/token`` wants ``scope=write`` (live: required; elsewhere optional, but any other value
  is a 400) and answers ``token_type: bearer_token`` (live) or ``bearer``
- ``/v1/customers`` and ``/v1/customers/{id}/backup_instances`` (404 in the spec shape, where
  the exporter must fall back to the definition listing)
- ``/v1/backup_definitions[?vendor_id=]`` lists another vendor's definition too, whose instance
  list answers 404; ``/v1/backup_definitions/{id}``
- ``/v1/backup_instances`` without ``backup_definition_id`` is a 400
- ``…/backups/active``: 204 when nothing runs, in every shape; 404 for an unknown instance
- ``…/exports`` with ``records_processed``/``records_failed`` and an ``exported_data_url`` that
  carries a secret token
- ``/v1/vendors/me`` returns the client secret, so that tests can prove it is never asked for

``link_cycle`` and ``cross_origin`` faults work on every list; ``cross_origin`` sends both the
``next`` link of the last page and every ``last`` link elsewhere.

Route keys for faults: ``token``, ``customers``, ``customer_instances``, ``definitions``,
``definition``, ``instances``, ``backups``, ``active_backup``, ``exports``, ``vendors_me``.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from exporter.simulator.fleet import HOUR
from exporter.simulator.routes import VendorRoute, error, page_links
from exporter.simulator.tokens import TokenStore
from exporter.simulator.world import Trouble, World
from exporter.vendors.backupify.simfleet import (
    DEFINITIONS,
    FOREIGN_DEFINITION,
    FOREIGN_VENDOR_ID,
    KEPT,
    PER_PAGE,
    PERIOD,
    VENDOR_ID,
    BackupifyFleet,
    Instance,
    backup,
    backups,
    export,
    generate,
    instance,
    running,
)

__all__ = ["KEPT", "PERIOD", "BackupifyFleet", "BackupifySim", "Instance", "backups", "generate"]

SCOPE: Final = "write"


def _paged(request: Request, items: list[Any]) -> JSONResponse:
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, math.ceil(len(items) / PER_PAGE))
    fault = getattr(request.state, "fault", None)
    next_url = None
    foreign = None
    if fault is not None and fault.kind == "link_cycle" and page == pages:
        next_url = str(request.url.include_query_params(page=1))
    elif fault is not None and fault.kind == "cross_origin":
        foreign = f"{fault.origin.rstrip('/')}{request.url.path}"
        if page == pages:
            next_url = f"{foreign}?page={page + 1}"
    links = page_links(request, page, pages, next_url=next_url)
    if foreign is not None:
        # Lists read from their tail follow `last`: that link points away too.
        links = re.sub(r'<[^>]*>; rel="last"', f'<{foreign}?page={pages}>; rel="last"', links)
    headers = {"Link": links}
    return JSONResponse(items[(page - 1) * PER_PAGE : page * PER_PAGE], headers=headers)


def _definitions(live: bool) -> list[dict[str, Any]]:
    ours = [(i, n, VENDOR_ID) for i, n in DEFINITIONS]
    rows = [*ours, (*FOREIGN_DEFINITION, FOREIGN_VENDOR_ID)]
    if not live:
        return [{"id": i, "name": n, "published": True, "vendor_id": v} for i, n, v in rows]
    return [
        {
            "id": i,
            "name": n,
            "description": f"{n} backups",
            "published": True,
            "vendor_id": v,
        }
        for i, n, v in rows
    ]


class BackupifySim:
    """Backup instances of customers of its own, with backups that start and finish as time
    passes, and exports."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.fleet = generate(world)
        self.tokens = TokenStore(world.token_ttl)

    def heal(self) -> None:
        for inst in self.fleet.instances:
            inst.stuck_since = None
            inst.newest_status = None
            inst.stale_since = None
            inst.failed_export = None

    def incident(self) -> list[Trouble]:
        inst = self.fleet.instances[0]
        inst.stuck_since = self.world.start - 20 * HOUR
        return [Trouble("long_backup", str(inst.customer_id), inst.customer_name, str(inst.id))]

    def routes(self) -> list[VendorRoute]:
        return _routes(self.world, self.fleet, self.tokens)


def _routes(world: World, fleet: BackupifyFleet, tokens: TokenStore) -> list[VendorRoute]:
    keys = world.credentials
    live = world.shape == "live"
    offers_customers = world.shape != "spec"

    def auth(request: Request) -> bool:
        return tokens.valid(request.headers.get("authorization"))

    def known(request: Request) -> Instance | None:
        return fleet.instance(request.path_params["instance_id"])

    async def token(request: Request, now: float) -> Any:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if not (
            secrets.compare_digest(form.get("client_id", ""), keys.client_id)
            and secrets.compare_digest(form.get("client_secret", ""), keys.client_secret)
        ):
            return JSONResponse({"error": "invalid_client"}, 401)
        scope = form.get("scope")
        if (live and scope is None) or (scope is not None and scope != SCOPE):
            return JSONResponse({"error": "invalid_scope", "message": "Invalid Scope"}, 400)
        access, _ = tokens.issue()
        return {
            "access_token": access,
            "expires_in": int(tokens.ttl) if tokens.ttl >= 1 else tokens.ttl,
            "token_type": "bearer_token" if live else "bearer",
        }

    async def customers(request: Request, now: float) -> Any:
        if not offers_customers:
            return error(404, "Not Found")
        return _paged(request, [{"id": i, "name": n} for i, n in fleet.customers()])

    async def customer_instances(request: Request, now: float) -> Any:
        wanted = request.path_params["customer_id"]
        chosen = [i for i in fleet.instances if str(i.customer_id) == wanted]
        if not offers_customers or not chosen:
            return error(404, "customer not found")
        return _paged(request, [instance(i, now) for i in chosen])

    async def definitions(request: Request, now: float) -> Any:
        rows = _definitions(live)
        vendor = request.query_params.get("vendor_id")
        if vendor is not None:
            rows = [r for r in rows if str(r["vendor_id"]) == vendor]
            if not rows:
                return error(404, "vendor not found")
        return _paged(request, rows)

    async def definition(request: Request, now: float) -> Any:
        wanted = request.path_params["definition_id"]
        found = [r for r in _definitions(live) if str(r["id"]) == wanted]
        return found[0] if found else error(404, "backup_definition not found")

    async def instances(request: Request, now: float) -> Any:
        wanted = request.query_params.get("backup_definition_id")
        if wanted is None:
            return error(400, "backup_definition_id is required")
        if wanted not in {str(i) for i, _ in DEFINITIONS}:
            # Another vendor's definition, or none at all.
            return error(404, "backup_definition not found")
        chosen = [i for i in fleet.instances if str(i.definition_id) == wanted]
        return _paged(request, [instance(i, now) for i in chosen])

    async def instance_backups(request: Request, now: float) -> Any:
        inst = known(request)
        if inst is None:
            return error(404, "backup_instance not found")
        return _paged(request, backups(inst, now))

    async def active(request: Request, now: float) -> Any:
        inst = known(request)
        if inst is None:
            return error(404, "backup_instance not found")
        current = running(inst, now)
        if current is None:
            return Response(status_code=204)
        return backup(inst, current)

    async def exports(request: Request, now: float) -> Any:
        inst = known(request)
        if inst is None:
            return error(404, "backup_instance not found")
        token = fleet.download_token
        return _paged(request, [export(inst, e, now, token) for e in inst.all_exports()])

    async def vendors_me(request: Request, now: float) -> Any:
        return {
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "email": "vendor@example.com",
            "name": "Demo MSP",
            "vendor_id": VENDOR_ID,
        }

    return [
        VendorRoute("/oauth/token", "token", token, None, methods=("POST",)),
        VendorRoute("/v1/customers", "customers", customers, auth),
        VendorRoute(
            "/v1/customers/{customer_id}/backup_instances",
            "customer_instances",
            customer_instances,
            auth,
        ),
        VendorRoute("/v1/backup_definitions", "definitions", definitions, auth),
        VendorRoute("/v1/backup_definitions/{definition_id}", "definition", definition, auth),
        VendorRoute("/v1/backup_instances", "instances", instances, auth),
        VendorRoute(
            "/v1/backup_instances/{instance_id}/backups/active", "active_backup", active, auth
        ),
        VendorRoute(
            "/v1/backup_instances/{instance_id}/backups", "backups", instance_backups, auth
        ),
        VendorRoute("/v1/backup_instances/{instance_id}/exports", "exports", exports, auth),
        VendorRoute("/v1/vendors/me", "vendors_me", vendors_me, auth),
    ]

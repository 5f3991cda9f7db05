"""Datto SaaS Protection routes, in the spec's shape, the live API's shape, or a mix of both."""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request

from exporter.simulator.fleet import DAY, SimCustomer
from exporter.simulator.routes import VendorRoute, error

if TYPE_CHECKING:
    from exporter.simulator.app import Simulator

COSTS: Final = {"domains": 1, "seats": 3, "applications": 2}
SPEC_LICENSE: Final = {
    "Active": "Licensed",
    "Unprotected": "Unlicensed",
    "Paused": "Paused",
    "Archived": "Archived",
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_shaped(sim: Simulator, position: int) -> bool:
    return sim.shape == "spec" or (sim.shape == "mixed" and position % 2 == 0)


def domains(sim: Simulator, now: float) -> Any:
    if sim.shape == "spec":
        return {
            "domains": [
                {
                    "saasCustomerId": str(c.id),
                    "externalSubscriptionId": c.external_subscription_id,
                    "domain": c.domain,
                    "status": c.status,
                }
                for c in sim.fleet.customers
            ]
        }
    out = []
    for c in sim.fleet.customers:
        active = c.active_seats
        recent = sum(
            1
            for s in c.seats
            if s.state == "Active" and s.backup_age is not None and s.backup_age < DAY
        )
        out.append(
            {
                "saasCustomerId": c.id,
                "saasCustomerName": c.name,
                "domain": c.domain,
                "organizationId": c.organization_id,
                "organizationName": c.organization_name,
                "seatsUsed": active,
                "productType": c.product,
                "externalSubscriptionId": c.external_subscription_id,
                "retentionType": c.retention_type,
                "status": c.status,
                "backupStats": {
                    "activeServicesCount": active,
                    "activeServicesWithRecentBackupCount": recent,
                    "backupPercentage": round(100.0 * recent / active, 1) if active else 0.0,
                },
            }
        )
    return out


def seats(
    sim: Simulator, customer: SimCustomer, position: int, request: Request, now: float
) -> Any:
    wanted = request.query_params.get("seatType")
    chosen = [s for s in customer.seats if wanted is None or s.seat_type == wanted]
    if spec_shaped(sim, position):
        return {
            "seats": [
                {
                    "remoteId": s.remote_id,
                    "displayName": s.name,
                    "email": s.main_id,
                    "seatType": s.seat_type,
                    "licenseStatus": SPEC_LICENSE[s.state],
                    "lastBackup": None if s.backup_age is None else iso(now - s.backup_age),
                }
                for s in chosen
            ]
        }
    return [
        {
            "remoteId": s.remote_id,
            "name": s.name,
            "mainId": s.main_id,
            "seatType": s.seat_type,
            "seatState": s.state,
            "billable": "1" if s.state == "Active" else "",
            "dateAdded": iso(now - s.added_age),
        }
        for s in chosen
    ]


def _int_param(request: Request, name: str, default: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def applications(
    sim: Simulator, customer: SimCustomer, position: int, request: Request, now: float
) -> Any:
    days = _int_param(request, "daysUntil", 10)
    page = _int_param(request, "_page", 1)
    per_page = _int_param(request, "_perPage", 100)
    if days is None or not 1 <= days <= 30:
        return error(400, "daysUntil must be between 1 and 30")
    if page is None or page < 1 or per_page is None or per_page < 1:
        return error(400, "_page and _perPage must be positive integers")
    items = []
    for app in customer.applications:
        history = [
            {
                "startTime": int((now - h.start_age) * 1000),
                "endTime": None if h.end_age is None else int((now - h.end_age) * 1000),
                "status": h.status,
                "timeWindow": f"Between{day}dAnd{day + 1}d",
                "activeServiceCount": h.active,
                "activeServiceWithBackupCount": h.with_backup,
                "activeServiceWithPerfectBackupCount": h.perfect,
                "totalServiceCount": h.total,
            }
            for day, h in enumerate(app.history)
            if h.start_age <= days * DAY
        ]
        items.append(
            {
                "customerId": customer.id,
                "customerName": customer.name,
                "usedBytes": 7_000_000 * len(customer.seats),
                "suites": [
                    {
                        "suiteType": app.suite_type,
                        "appTypes": [{"appType": app.app_type, "backupHistory": history}],
                    }
                ],
            }
        )
    total_pages = max(1, math.ceil(len(items) / per_page))
    envelope = {
        "pagination": {
            "page": page,
            "perPage": per_page,
            "totalPages": total_pages,
            "count": len(items),
        },
        "items": items[(page - 1) * per_page : page * per_page],
    }
    # Some live answers wrap the envelope in an array.
    if sim.shape != "spec" and position % 3 == 0:
        return [envelope]
    return envelope


def _basic_auth(sim: Simulator, request: Request) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, sim.public_key) and secrets.compare_digest(
        password, sim.private_key
    )


def routes(sim: Simulator) -> list[VendorRoute]:
    def customer_of(request: Request) -> tuple[SimCustomer, int] | None:
        customer = sim.fleet.customer(request.path_params["customer_id"])
        if customer is None:
            return None
        return customer, sim.fleet.customers.index(customer)

    def size(request: Request) -> int | None:
        found = customer_of(request)
        return len(found[0].seats) if found else None

    async def list_domains(request: Request, now: float) -> Any:
        return domains(sim, now)

    async def list_seats(request: Request, now: float) -> Any:
        found = customer_of(request)
        if found is None:
            return error(404, "Customer not found")
        return seats(sim, found[0], found[1], request, now)

    async def list_applications(request: Request, now: float) -> Any:
        found = customer_of(request)
        if found is None:
            return error(404, "Customer not found")
        return applications(sim, found[0], found[1], request, now)

    def auth(request: Request) -> bool:
        return _basic_auth(sim, request)

    return [
        VendorRoute("/v1/saas/domains", "domains", list_domains, auth, COSTS["domains"]),
        VendorRoute(
            "/v1/saas/{customer_id}/seats", "seats", list_seats, auth, COSTS["seats"], size
        ),
        VendorRoute(
            "/v1/saas/{customer_id}/applications",
            "applications",
            list_applications,
            auth,
            COSTS["applications"],
            size,
        ),
    ]

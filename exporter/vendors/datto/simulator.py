"""Datto SaaS Protection's fake API over the shared fleet, in the spec's shape, the live API's
shape, or a mix of both."""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request

from exporter.simulator.fleet import DAY, HOUR, SimCustomer
from exporter.simulator.routes import VendorRoute, error
from exporter.simulator.world import Trouble, World

COSTS: Final = {"domains": 1, "seats": 3, "applications": 2}
SPEC_LICENSE: Final = {
    "Active": "Licensed",
    "Unprotected": "Unlicensed",
    "Paused": "Paused",
    "Archived": "Archived",
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MALFORMED: Final = {
    "domains": b'[{"saasCustomerId": 1001, "saasCustomerName": "Cont',
    "seats": b'{"seats": [{"remoteId": "x",',
    "applications": b'{"pagination": {"page": 1, "perPage": 100}, "items": [{"customerId": ',
}


def spec_shaped(world: World, position: int) -> bool:
    return world.shape == "spec" or (world.shape == "mixed" and position % 2 == 0)


def domains(world: World, now: float) -> Any:
    if world.shape == "spec":
        return {
            "domains": [
                {
                    "saasCustomerId": str(c.id),
                    "externalSubscriptionId": c.external_subscription_id,
                    "domain": c.domain,
                    "status": c.status,
                }
                for c in world.fleet.customers
            ]
        }
    out = []
    for c in world.fleet.customers:
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


def seats(world: World, customer: SimCustomer, position: int, request: Request, now: float) -> Any:
    wanted = request.query_params.get("seatType")
    chosen = [s for s in customer.seats if wanted is None or s.seat_type == wanted]
    if spec_shaped(world, position):
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
    world: World, customer: SimCustomer, position: int, request: Request, now: float
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
    if world.shape != "spec" and position % 3 == 0:
        return [envelope]
    return envelope


def _basic_auth(world: World, request: Request) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    keys = world.credentials
    return secrets.compare_digest(user, keys.public_key) and secrets.compare_digest(
        password, keys.private_key
    )


class DattoSim:
    """Serves the shared fleet itself: its customers, seats and applications are Datto's."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _customer_of(self, request: Request) -> tuple[SimCustomer, int] | None:
        fleet = self.world.fleet
        customer = fleet.customer(request.path_params["customer_id"])
        if customer is None:
            return None
        return customer, fleet.customers.index(customer)

    def _size(self, request: Request) -> int | None:
        found = self._customer_of(request)
        return len(found[0].seats) if found else None

    def _auth(self, request: Request) -> bool:
        return _basic_auth(self.world, request)

    async def _domains(self, request: Request, now: float) -> Any:
        return domains(self.world, now)

    async def _seats(self, request: Request, now: float) -> Any:
        found = self._customer_of(request)
        if found is None:
            return error(404, "Customer not found")
        return seats(self.world, found[0], found[1], request, now)

    async def _applications(self, request: Request, now: float) -> Any:
        found = self._customer_of(request)
        if found is None:
            return error(404, "Customer not found")
        return applications(self.world, found[0], found[1], request, now)

    def routes(self) -> list[VendorRoute]:
        return [
            VendorRoute(
                "/v1/saas/domains",
                "domains",
                self._domains,
                self._auth,
                COSTS["domains"],
                malformed=MALFORMED["domains"],
            ),
            VendorRoute(
                "/v1/saas/{customer_id}/seats",
                "seats",
                self._seats,
                self._auth,
                COSTS["seats"],
                self._size,
                malformed=MALFORMED["seats"],
            ),
            VendorRoute(
                "/v1/saas/{customer_id}/applications",
                "applications",
                self._applications,
                self._auth,
                COSTS["applications"],
                self._size,
                malformed=MALFORMED["applications"],
            ),
        ]

    def heal(self) -> None:
        for index, customer in enumerate(self.world.fleet.customers):
            customer.status = "active"
            for number, seat in enumerate(customer.seats):
                if seat.state == "Active":
                    seat.backup_age = HOUR * (1 + (index + number) % 8)
            for app in customer.applications:
                for day, entry in enumerate(app.history):
                    entry.status = "Success"
                    entry.start_age = day * DAY + 2 * HOUR
                    entry.end_age = day * DAY + 1.5 * HOUR

    def incident(self) -> list[Trouble]:
        customer = self.world.fleet.customers[0]
        for seat in customer.seats:
            if seat.state == "Active":
                seat.backup_age = 3 * DAY + 2 * HOUR
        return [Trouble("stale_seats", str(customer.id), customer.name)]

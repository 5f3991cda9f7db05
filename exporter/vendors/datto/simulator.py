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

from exporter.simulator.fleet import DAY, HOUR, SimApplication, SimCustomer, SimHistory, SimSeat
from exporter.simulator.routes import VendorRoute, error
from exporter.simulator.world import Trouble, World
from exporter.vendors.datto.simseats import SeatChanges

COSTS: Final = {"domains": 1, "seats": 3, "applications": 2, "seat_change": 5}
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
    "seat_change": b'{"results": [{"remoteId": "x",',
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
            "billable": "1" if billable(s) else "",
            "dateAdded": iso(now - s.added_age),
        }
        for s in chosen
    ]


def billable(seat: SimSeat) -> bool:
    """Datto bills Active, Paused and Archived User seats ("Changing seat status", M365)."""
    return seat.seat_type == "User" and seat.state in {"Active", "Paused", "Archived"}


def _int_param(request: Request, name: str, default: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


# The live API's appType words; the spec has none, and the fleet keeps shorter ones.
LIVE_APP_TYPES: Final = {
    "OneDrive": "Office365OneDrive",
    "SharePoint": "Office365SharePoint",
    "Teams": "Office365Teams",
}
# What the fleet says it stored per seat and application; only sizes need to look plausible.
BYTES_PER_SEAT: Final = 7_000_000


def _ms(ts: float) -> int:
    return int(ts * 1000)


def _spec_history(app: SimApplication, days: int, now: float) -> list[dict[str, Any]]:
    """Entries as individual backups: start before end, the fleet's own status words."""
    return [
        {
            "startTime": _ms(now - h.start_age),
            "endTime": None if h.end_age is None else _ms(now - h.end_age),
            "status": h.status,
            "activeServiceCount": h.active,
            "activeServiceWithBackupCount": h.with_backup,
            "activeServiceWithPerfectBackupCount": h.perfect,
            "totalServiceCount": h.total,
        }
        for h in app.history
        if h.start_age <= days * DAY
    ]


def _window_status(app: SimApplication, h: SimHistory) -> str:
    if app.new:
        return "Insufficient History"
    if h.with_backup == h.active and h.perfect == h.active:
        return "Perfect"
    return "Backup With Issues"


def _live_app(app: SimApplication, seats: int, days: int, now: float) -> dict[str, Any]:
    """One appType as the live API answers: daily windows, newest first, ``startTime`` the
    window's later bound; the last fully protected time, or a bucket when it is too old."""
    windows = [
        {
            "timeWindow": f"Between{day}dAnd{day + 1}d",
            "startTime": _ms(now - day * DAY),
            "endTime": _ms(now - (day + 1) * DAY),
            "status": _window_status(app, h),
            "activeServiceCount": h.active,
            "activeServiceWithBackupCount": h.with_backup,
            "activeServiceWithPerfectBackupCount": h.perfect,
            "totalServiceCount": h.total,
        }
        for day, h in enumerate(app.history[:days])
    ]
    protected: int | str = "OVER_10_DAYS_AGO"
    for h in app.history:
        if h.with_backup == h.active and h.end_age is not None:
            protected = _ms(now - h.end_age)
            break
    return {
        "appType": LIVE_APP_TYPES.get(app.app_type, app.app_type),
        "usedBytes": BYTES_PER_SEAT * seats,
        "uningestedServiceCount": app.uningested,
        "lastFullyProtectedTime": protected,
        "backupHistory": windows,
    }


def _items(world: World, customer: SimCustomer, position: int, days: int, now: float) -> Any:
    if spec_shaped(world, position):
        # One item per application, as the simulator has always answered the spec shape.
        return [
            {
                "customerId": customer.id,
                "customerName": customer.name,
                "suites": [
                    {
                        "suiteType": app.suite_type,
                        "appTypes": [
                            {
                                "appType": app.app_type,
                                "backupHistory": _spec_history(app, days, now),
                            }
                        ],
                    }
                ],
            }
            for app in customer.applications
        ]
    seats = len(customer.seats)
    suites: dict[str, list[dict[str, Any]]] = {}
    for app in customer.applications:
        suites.setdefault(app.suite_type, []).append(_live_app(app, seats, days, now))
    return [
        {
            "customerId": customer.id,
            "customerName": customer.name,
            "usedBytes": BYTES_PER_SEAT * seats * len(customer.applications),
            "suites": [{"suiteType": k, "appTypes": v} for k, v in suites.items()],
        }
    ]


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
    items = _items(world, customer, position, days, now)
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
        # bulkSeatChange, and its knobs for tests (delay, read-only key, seats that fail).
        self.seat_changes = SeatChanges(world)

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
        self.seat_changes.settle(now)
        return domains(self.world, now)

    async def _seats(self, request: Request, now: float) -> Any:
        self.seat_changes.settle(now)
        found = self._customer_of(request)
        if found is None:
            return error(404, "Customer not found")
        return seats(self.world, found[0], found[1], request, now)

    async def _seat_change(self, request: Request, now: float) -> Any:
        found = self._customer_of(request)
        if found is None:
            return error(404, "Customer not found")
        return await self.seat_changes.handle(found[0], request, now)

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
            VendorRoute(
                "/v1/saas/{customer_id}/{subscription}/bulkSeatChange",
                "seat_change",
                self._seat_change,
                self._auth,
                COSTS["seat_change"],
                self._size,
                methods=("PUT",),
                malformed=MALFORMED["seat_change"],
            ),
        ]

    def heal(self) -> None:
        for index, customer in enumerate(self.world.fleet.customers):
            customer.status = "active"
            for number, seat in enumerate(customer.seats):
                if seat.state == "Active":
                    seat.backup_age = HOUR * (1 + (index + number) % 8)
            for app in customer.applications:
                app.uningested, app.new = 0, False
                for day, entry in enumerate(app.history):
                    entry.status = "Success"
                    entry.with_backup = entry.perfect = entry.active
                    entry.start_age = day * DAY + 2 * HOUR
                    entry.end_age = day * DAY + 1.5 * HOUR

    def incident(self) -> list[Trouble]:
        customer = self.world.fleet.customers[0]
        for seat in customer.seats:
            if seat.state == "Active":
                seat.backup_age = 3 * DAY + 2 * HOUR
        return [Trouble("stale_seats", str(customer.id), customer.name)]

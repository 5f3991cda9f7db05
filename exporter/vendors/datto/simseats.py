"""The simulator's bulkSeatChange: Datto's one write operation, in the live and the spec shape.

It changes the states that ``/seats`` then reports (after ``delay_seconds``: Datto applies
changes in about two minutes), refuses what Datto refuses with a 400 (more than 100 ids,
values in the wrong case, legacy Google seat management), and fails single seats: one that
is not the customer's, not of the request's type, archived (Datto then only deletes backups),
unprotected and asked to pause, or one a test put in ``refuse``. It may answer only after
``answer_after_seconds``, the change made: a client that gave up never heard it worked.
Datto's error texts are not public; these say the same things.

The live shape answers 200 with an empty body (no per-seat result is publicly documented;
``live_results`` answers the bare ``[{remoteId, success, message}]`` one client's mock returns);
the spec shape answers ``{"results": [...]}``. In the ``mixed`` world both paths and bodies are
taken.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from exporter.simulator.fleet import SimCustomer, SimSeat
from exporter.simulator.routes import error
from exporter.simulator.world import World

ACTIONS: Final = {"License": "Active", "Unlicense": "Unprotected", "Pause": "Paused"}
SEAT_TYPES: Final = ("User", "SharedMailbox", "Site", "TeamSite", "Team", "SharedDrive")
SPEC_SEGMENT: Final = "externalSubscriptionId"
MAX_IDS: Final = 100
DONE: Final = {"License": "licensed", "Pause": "paused", "Unlicense": "unlicensed"}


@dataclass(frozen=True)
class Entry:
    remote_id: str
    action: str
    seat_type: str


@dataclass(frozen=True)
class Change:
    """One request the simulator took: for tests to see how a client batched its seats."""

    customer_id: str
    style: str
    entries: tuple[Entry, ...]
    failed: tuple[str, ...]


class Invalid(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _choice(value: object, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        shown = json.dumps(value)[:40]
        raise Invalid(
            400, f"Invalid {name} {shown}. Possible values: {', '.join(allowed)} (case-sensitive)"
        )
    return value


def _count(entries: list[Entry]) -> list[Entry]:
    if not entries:
        raise Invalid(400, "No seats given")
    if len(entries) > MAX_IDS:
        raise Invalid(400, f"Too many seats: at most {MAX_IDS} can be changed in one request")
    return entries


def live_entries(body: object) -> list[Entry]:
    if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        raise Invalid(400, "seat_type, action_type and ids are required")
    action = _choice(body.get("action_type"), tuple(ACTIONS), "action_type")
    seat_type = _choice(body.get("seat_type"), SEAT_TYPES, "seat_type")
    ids = body["ids"]
    if not all(isinstance(i, str) and i for i in ids):
        raise Invalid(400, "ids must be a list of object ids")
    return _count([Entry(i, action, seat_type) for i in ids])


def spec_entries(body: object) -> list[Entry]:
    seats = body.get("seats") if isinstance(body, dict) else None
    if not isinstance(seats, list) or not all(isinstance(s, dict) for s in seats):
        raise Invalid(400, "seats is required: a list of {remoteId, action, seatType}")
    entries = []
    for seat in seats:
        remote_id = seat.get("remoteId")
        if not isinstance(remote_id, str) or not remote_id:
            raise Invalid(400, "Each seat needs a remoteId")
        action = _choice(seat.get("action"), tuple(ACTIONS), "action")
        entries.append(
            Entry(remote_id, action, _choice(seat.get("seatType"), SEAT_TYPES, "seatType"))
        )
    return _count(entries)


def legacy_google(customer: SimCustomer) -> bool:
    return customer.product == "GoogleApps" and customer.external_subscription_id.startswith(
        "Classic:"
    )


class SeatChanges:
    """bulkSeatChange over the shared fleet; the knobs are for tests and the demo."""

    def __init__(self, world: World) -> None:
        self.world = world
        # Seconds until a change shows in /seats (Datto: about 120).
        self.delay_seconds = 0.0
        # A key that may read but not write: every change is a 403.
        self.read_only = False
        # Seats whose change fails (a partial failure).
        self.refuse: set[str] = set()
        # The live shape answers per-seat results, as one client's mock does.
        self.live_results = False
        # Seconds between applying a change and answering: a client that gives up first
        # never hears that it worked.
        self.answer_after_seconds = 0.0
        self.log: list[Change] = []
        self._pending: list[tuple[float, SimSeat, str]] = []

    def settle(self, now: float) -> None:
        """Apply the changes that are due."""
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, seat, state in due:
            seat.state = state

    def _style(self, customer: SimCustomer, segment: str, body: object) -> str:
        shape = self.world.shape
        by_path = {SPEC_SEGMENT: "spec", customer.external_subscription_id: "live"}.get(segment)
        if by_path is None or shape not in ("mixed", by_path):
            raise Invalid(404, "Subscription not found")
        if shape != "mixed":
            return shape
        return "spec" if isinstance(body, dict) and "seats" in body else "live"

    async def handle(self, customer: SimCustomer, request: Request, now: float) -> Any:
        self.settle(now)
        if self.read_only:
            return error(403, "Forbidden: this API key may not change seats")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "The request body is not valid JSON")
        try:
            style = self._style(customer, request.path_params["subscription"], body)
            if legacy_google(customer):
                raise Invalid(
                    400, "Bulk seat change is not available for legacy Google seat management"
                )
            entries = spec_entries(body) if style == "spec" else live_entries(body)
        except Invalid as exc:
            return error(exc.status, str(exc))
        results = [self._apply(customer, entry, now) for entry in entries]
        failed = tuple(r["remoteId"] for r in results if not r["success"])
        self.log.append(Change(str(customer.id), style, tuple(entries), failed))
        if self.answer_after_seconds > 0:
            await asyncio.sleep(self.answer_after_seconds)
        if style == "spec":
            return {"results": results}
        if self.live_results:
            return results
        return Response(status_code=200)

    def _apply(self, customer: SimCustomer, entry: Entry, now: float) -> dict[str, Any]:
        seat = next((s for s in customer.seats if s.remote_id == entry.remote_id), None)
        problem = None
        if seat is None:
            problem = "Seat not found"
        elif seat.seat_type != entry.seat_type:
            problem = f"Seat is a {seat.seat_type}, not a {entry.seat_type}"
        elif entry.remote_id in self.refuse:
            problem = "Seat change failed"
        elif seat.state == "Archived":
            problem = "Archived seats can only have their backups deleted"
        elif entry.action == "Pause" and seat.state == "Unprotected":
            problem = "Only protected seats can be paused"
        if problem is not None or seat is None:
            return {"remoteId": entry.remote_id, "success": False, "message": problem}
        state = ACTIONS[entry.action]
        if self.delay_seconds > 0:
            self._pending.append((now + self.delay_seconds, seat, state))
        else:
            seat.state = state
        message = f"Seat {DONE[entry.action]} successfully"
        return {"remoteId": entry.remote_id, "success": True, "message": message}

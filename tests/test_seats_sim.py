"""The simulator's bulkSeatChange as a client meets it on the socket (the 100 limit, values in
the wrong case, the two shapes, per-seat failures, states that /seats and /domains then report,
changes applied later), and the pure parts of seat management."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exporter.seats import (
    CHANGED,
    FAILED,
    NOT_SENT,
    PENDING,
    SKIPPED,
    BadInput,
    ManagedCustomer,
    Outcome,
    SeatRow,
    exit_code,
    find_customer,
    make_plan,
    parse_ids,
    parse_where,
    seat_type_word,
)
from exporter.simulator.app import Simulator
from exporter.simulator.fleet import SimCustomer
from exporter.simulator.world import Shape
from exporter.vendors.datto.seatchange import change_request, legacy_google, read_results
from exporter.vendors.datto.simulator import DattoSim
from tests.conftest import ServerThread
from tests.test_seats_support import SEED, add_seats, set_states

AUTH = ("demo-public", "demo-private")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def served(shape: Shape, clock: Clock) -> Iterator[tuple[Simulator, httpx.Client]]:
    sim = Simulator(customers=4, seats_per_customer=10, seed=SEED, shape=shape, clock=clock)
    with ServerThread(sim.app()) as server, httpx.Client(base_url=server.url, auth=AUTH) as http:
        yield sim, http


@pytest.fixture
def live(clock: Clock) -> Iterator[tuple[Simulator, httpx.Client]]:
    yield from served("live", clock)


@pytest.fixture
def spec(clock: Clock) -> Iterator[tuple[Simulator, httpx.Client]]:
    yield from served("spec", clock)


def office(sim: Simulator) -> SimCustomer:
    return next(c for c in sim.fleet.customers if c.product == "Office365")


def put_live(http: httpx.Client, customer: SimCustomer, body: Any) -> httpx.Response:
    path = f"/v1/saas/{customer.id}/{customer.external_subscription_id}/bulkSeatChange"
    return http.put(path, json=body)


def put_spec(http: httpx.Client, customer: SimCustomer, body: Any) -> httpx.Response:
    return http.put(f"/v1/saas/{customer.id}/externalSubscriptionId/bulkSeatChange", json=body)


def test_at_most_100_ids_per_request(live: tuple[Simulator, httpx.Client]) -> None:
    sim, http = live
    customer = office(sim)
    ids = add_seats(customer, 101)
    body = {"seat_type": "User", "action_type": "License", "ids": ids}
    reply = put_live(http, customer, body)
    assert reply.status_code == 400
    assert reply.json()["message"] == "Too many seats: at most 100 can be changed in one request"
    assert {s.state for s in customer.seats if s.remote_id in ids} == {"Unprotected"}
    reply = put_live(http, customer, {**body, "ids": ids[:100]})
    assert reply.status_code == 200
    assert reply.content == b"", "the live answer carries no per-seat result"
    assert [s.state for s in customer.seats if s.remote_id in ids] == ["Active"] * 100 + [
        "Unprotected"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"seat_type": "User", "action_type": "license", "ids": ["a"]},
            'Invalid action_type "license". Possible values: License, Unlicense, Pause '
            "(case-sensitive)",
        ),
        (
            {"seat_type": "user", "action_type": "License", "ids": ["a"]},
            'Invalid seat_type "user". Possible values: User, SharedMailbox, Site, TeamSite, '
            "Team, SharedDrive (case-sensitive)",
        ),
        ({"seats": [{"remoteId": "a", "action": "License", "seatType": "User"}]}, "required"),
        ({"seat_type": "User", "action_type": "License", "ids": []}, "No seats given"),
    ],
)
def test_values_are_case_sensitive_and_the_live_body_required(
    live: tuple[Simulator, httpx.Client], body: dict[str, Any], message: str
) -> None:
    sim, http = live
    reply = put_live(http, office(sim), body)
    assert reply.status_code == 400
    assert message in reply.json()["message"]
    assert sim.part(DattoSim).seat_changes.log == []


def test_each_shape_takes_its_own_path(
    live: tuple[Simulator, httpx.Client], spec: tuple[Simulator, httpx.Client]
) -> None:
    for (sim, http), wrong in ((live, put_spec), (spec, put_live)):
        customer = office(sim)
        entry = {"remoteId": customer.seats[0].remote_id, "action": "Pause", "seatType": "User"}
        reply = wrong(http, customer, {"seats": [entry]})
        assert reply.status_code == 404
        assert reply.json()["message"] == "Subscription not found"
    # The spec's body under the spec's path; the live body is not the spec's.
    sim, http = spec
    customer = office(sim)
    reply = put_spec(http, customer, {"seat_type": "User", "action_type": "Pause", "ids": ["a"]})
    assert reply.status_code == 400
    assert "seats is required" in reply.json()["message"]


def test_spec_results_per_seat_and_the_states_seats_and_domains_then_report(
    spec: tuple[Simulator, httpx.Client],
) -> None:
    sim, http = spec
    customer = office(sim)
    set_states(customer, "Active")
    [new, other, archived, unprotected] = [
        add_seats(customer, 1, state=state, seat_type=kind)[0]
        for state, kind in (
            ("Unprotected", "User"),
            ("Unprotected", "SharedMailbox"),
            ("Archived", "User"),
            ("Unprotected", "User"),
        )
    ]
    entries = [
        {"remoteId": new, "action": "License", "seatType": "User"},
        {"remoteId": other, "action": "License", "seatType": "User"},
        {"remoteId": archived, "action": "License", "seatType": "User"},
        {"remoteId": unprotected, "action": "Pause", "seatType": "User"},
        {"remoteId": "nobody", "action": "License", "seatType": "User"},
    ]
    reply = put_spec(http, customer, {"seats": entries})
    assert reply.status_code == 200
    assert reply.json() == {
        "results": [
            {"remoteId": new, "success": True, "message": "Seat licensed successfully"},
            {"remoteId": other, "success": False, "message": "Seat is a SharedMailbox, not a User"},
            {
                "remoteId": archived,
                "success": False,
                "message": "Archived seats can only have their backups deleted",
            },
            {
                "remoteId": unprotected,
                "success": False,
                "message": "Only protected seats can be paused",
            },
            {"remoteId": "nobody", "success": False, "message": "Seat not found"},
        ]
    }
    seats = http.get(f"/v1/saas/{customer.id}/seats").json()["seats"]
    status = {s["remoteId"]: s["licenseStatus"] for s in seats}
    assert [status[i] for i in (new, other, archived, unprotected)] == [
        "Licensed",
        "Unlicensed",
        "Archived",
        "Unlicensed",
    ]
    assert reply.headers["X-API-Limit-Cost"] == "5", "a change is charged to the budget"


def test_changes_show_only_once_the_vendor_has_applied_them(
    live: tuple[Simulator, httpx.Client], clock: Clock
) -> None:
    sim, http = live
    customer = office(sim)
    set_states(customer, "Active")
    ids = add_seats(customer, 2)
    sim.part(DattoSim).seat_changes.delay_seconds = 120
    used = next(
        d for d in http.get("/v1/saas/domains").json() if d["saasCustomerId"] == customer.id
    )
    reply = put_live(http, customer, {"seat_type": "User", "action_type": "License", "ids": ids})
    assert reply.status_code == 200

    def states() -> tuple[list[str], int]:
        seats = {
            s["remoteId"]: s["seatState"] for s in http.get(f"/v1/saas/{customer.id}/seats").json()
        }
        domain = next(
            d for d in http.get("/v1/saas/domains").json() if d["saasCustomerId"] == customer.id
        )
        return [seats[i] for i in ids], domain["seatsUsed"]

    clock.now += 119
    assert states() == (["Unprotected"] * 2, used["seatsUsed"])
    clock.now += 1
    assert states() == (["Active"] * 2, used["seatsUsed"] + 2)


def test_a_read_only_key_may_not_change_seats(live: tuple[Simulator, httpx.Client]) -> None:
    sim, http = live
    customer = office(sim)
    sim.part(DattoSim).seat_changes.read_only = True
    ids = add_seats(customer, 1)
    reply = put_live(http, customer, {"seat_type": "User", "action_type": "License", "ids": ids})
    assert reply.status_code == 403
    assert customer.seats[-1].state == "Unprotected"
    assert http.get(f"/v1/saas/{customer.id}/seats").status_code == 200, "reading still works"


def test_request_bodies_and_paths() -> None:
    assert change_request(
        "live",
        "1001",
        "Classic:Office365:654321",
        action="unlicense",
        seat_type="User",
        ids=["a", "b"],
    ) == (
        "/v1/saas/1001/Classic:Office365:654321/bulkSeatChange",
        {"seat_type": "User", "action_type": "Unlicense", "ids": ["a", "b"]},
    )
    assert change_request(
        "spec", "cust-001", "sub-abc123", action="pause", seat_type="Team", ids=["a"]
    ) == (
        "/v1/saas/cust-001/externalSubscriptionId/bulkSeatChange",
        {"seats": [{"remoteId": "a", "action": "Pause", "seatType": "Team"}]},
    )
    path, _ = change_request("live", "1/2", "x/y", action="license", seat_type="User", ids=["a"])
    assert path == "/v1/saas/1%2F2/x%2Fy/bulkSeatChange"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"results": [{"remoteId": "a", "success": True, "message": "ok"}]}, {"a": (True, "ok")}),
        ([{"remoteId": "a", "success": "false", "message": "no\x1b[2J"}], {"a": (False, "no [2J")}),
        ([{"remoteId": "zz", "success": True}, {"remoteId": "b", "success": 1}], {}),
        ([{"remoteId": 7, "success": True}], {"7": (True, "")}),
        (None, {}),
        ({"message": "accepted"}, {}),
        ("text", {}),
    ],
)
def test_per_seat_results_are_read_only_where_they_are_clear(
    body: Any, expected: dict[str, tuple[bool, str]]
) -> None:
    assert read_results(body, ["a", "b", "7"]) == expected


@pytest.mark.parametrize(
    ("product", "subscription", "legacy"),
    [
        ("GoogleApps", "Classic:GoogleApps:143046", True),
        (None, "Classic:GoogleApps:143046", True),
        ("GoogleApps", "GoogleWorkspace:987", False),
        ("Office365", "Classic:Office365:654321", False),
        (None, "sub-abc123", False),
    ],
)
def test_legacy_google_detection(product: str | None, subscription: str, legacy: bool) -> None:
    assert legacy_google(product, subscription) is legacy


def seat(seat_id: str, state: str, kind: str = "User") -> SeatRow:
    return SeatRow(seat_id, seat_id, kind, state, state)


def test_plans_batch_one_type_at_a_time_and_skip_what_is_done() -> None:
    customer = ManagedCustomer("1", "C", "c.example", "microsoft_365")
    rows = [seat(f"u{i}", "unlicensed") for i in range(3)] + [
        seat("m1", "unlicensed", "SharedMailbox"),
        seat("done", "licensed"),
        seat("gone", "archived"),
    ]
    plan = make_plan(
        customer, "license", rows, 2, lambda s, _: "no" if s.state == "archived" else None
    )
    assert [[s.id for s in batch] for batch in plan.batches] == [["u0", "u1"], ["u2"], ["m1"]]
    assert [s.id for s in plan.skipped] == ["done"]
    assert plan.blocked == {"gone": "no"}


def test_selection_words() -> None:
    assert parse_ids(["a, b\nc # a comment\n\n a"]) == ("a", "b", "c")
    where = parse_where(["state=unlicensed,paused", "type=User"])
    assert where.states == frozenset({"unlicensed", "paused"})
    assert where.seat_type == "User"
    with pytest.raises(BadInput, match="given twice"):
        parse_where(["state=paused", "state=licensed"])
    assert seat_type_word("shared_mailbox", ["User", "SharedMailbox"]) == "SharedMailbox"
    assert seat_type_word("TEAMSITE", ["Team", "TeamSite"]) == "TeamSite"
    assert seat_type_word("Mailbox", ["User", "SharedMailbox"]) is None


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([CHANGED, SKIPPED], 0),
        ([CHANGED, PENDING], 3),
        ([CHANGED, PENDING, FAILED], 1),
        ([NOT_SENT], 1),
        ([], 0),
    ],
)
def test_exit_codes(statuses: list[str], code: int) -> None:
    assert exit_code({str(i): Outcome(s) for i, s in enumerate(statuses)}) == code


def test_customers_by_id_name_or_domain_and_never_a_guess() -> None:
    fleet = [
        ManagedCustomer("1", "Contoso", "contoso.example", "microsoft_365"),
        ManagedCustomer("2", "Twin", "twin-a.example", "microsoft_365"),
        ManagedCustomer("3", "twin", "twin-b.example", "microsoft_365"),
        ManagedCustomer("4", "1", "", "microsoft_365"),
    ]
    assert find_customer(fleet, "1").id == "1", "an id comes before a name"
    assert find_customer(fleet, " contoso ").id == "1"
    assert find_customer(fleet, "TWIN-B.example").id == "3"
    with pytest.raises(BadInput, match=r"2 customers are called 'Twin' \(ids 2, 3\): give an id"):
        find_customer(fleet, "Twin")
    with pytest.raises(BadInput, match="no customer 'Contos' among the source's 4 customers"):
        find_customer(fleet, "Contos")

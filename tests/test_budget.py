"""Budget pacing: the vendor's budget headers pace a source's calls, a calls-per-hour limit does
where there are none, a 429 pauses the whole source without holding a concurrency slot, and the
window state survives a restart. The bucket arithmetic runs on a fake clock; the rest against
the simulator on a loopback socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from exporter.budget import HOUR, Pacer, Report, Ticket
from exporter.http import (
    ApiStats,
    BearerAuth,
    RateGate,
    RateLimited,
    Token,
    TokenCache,
    VendorClient,
)
from exporter.settings import BudgetConfig
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.vendors.datto.settings import DattoSettings
from tests.conftest import RETRY, ServerThread, datto_source

T0 = 1_700_000_000.0


class Clocks:
    """A wall clock and a monotonic clock that move together, by hand."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 100.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def pacer(clocks: Clocks, **config: Any) -> Pacer:
    return Pacer(BudgetConfig(**config), clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)


def admitted(got: Ticket | float) -> Ticket:
    assert isinstance(got, Ticket), f"expected a ticket, got a wait of {got}s"
    return got


def waits(got: Ticket | float) -> float:
    assert not isinstance(got, Ticket), "expected a wait, got a ticket"
    return got


def mode(p: Pacer) -> str:
    return p.mode


def in_header_mode(p: Pacer, clocks: Clocks, remaining: float = 99, window: float = 100) -> None:
    """The first call probes; its answer opens a window."""
    probe = admitted(p.poll("a"))
    assert probe.probe
    assert waits(p.poll("a")) > 0, "one probe at a time"
    p.observe(probe, Report(remaining, clocks.wall + window, 1), 200)
    assert p.mode == "headers"


# The bucket's arithmetic, on a fake clock.


def test_headers_spread_the_usable_budget_after_a_burst(clocks: Clocks) -> None:
    p = pacer(clocks, reserve_ratio=0.1, burst_ratio=0.1)
    in_header_mode(p, clocks)
    # Limit 100, reserve 10: 90 usable, a burst of 9 at once.
    burst = [admitted(p.poll("a")) for _ in range(9)]
    wait = waits(p.poll("a"))
    # 89 left less the reserve and 9 in flight, over the window less its unpaced last 5 %.
    assert wait == pytest.approx(1 / (80 / 95))
    clocks.advance(wait * 1.000001)
    admitted(p.poll("a"))
    for ticket in burst:
        p.observe(ticket, Report(70, T0 + 100, 1), 200)
    assert p.view().remaining == pytest.approx(70 - 1 - 10)
    # Until a second window shows the length of one, it is taken to be an hour.
    assert p.view().allowed_per_hour == pytest.approx(90)


def test_the_reserve_and_calls_in_flight_are_never_spent(clocks: Clocks) -> None:
    p = pacer(clocks, reserve_ratio=0.1, burst_ratio=1.0)
    in_header_mode(p, clocks, remaining=14)
    # The limit is estimated from remaining + cost at the window's start: 15, reserve 1.5.
    first = admitted(p.poll("seats"))
    p.observe(first, Report(10, T0 + 100, 3), 200)
    assert p.cost("seats") == 3
    for _ in range(2):
        admitted(p.poll("seats"))
    # 10 - 6 in flight - 1.5 reserve < 3: wait for the reset.
    assert waits(p.poll("seats")) == pytest.approx(100)
    assert p.view().remaining == pytest.approx(2.5)
    admitted(p.poll("other"))  # a cheaper call still fits


def test_the_lowest_remaining_of_a_window_wins(clocks: Clocks) -> None:
    p = pacer(clocks, burst_ratio=1.0)
    in_header_mode(p, clocks)
    a, b, c = (admitted(p.poll("a")) for _ in range(3))
    p.observe(a, Report(50, T0 + 100, 1), 200)
    p.observe(b, Report(60, T0 + 100, 1), 200)  # answered out of order
    assert p.view().remaining == pytest.approx(50 - 1 - 10)
    # A new window: its first answer is the new truth, and its limit is the largest seen.
    p.observe(c, Report(120, T0 + 200, 5), 200)
    assert p.view().remaining == pytest.approx(120 - 12.5)
    late = admitted(p.poll("a"))
    p.observe(late, Report(3, T0 + 100, 1), 200)  # from the window that passed
    assert p.view().remaining == pytest.approx(120 - 12.5)
    assert p.view().allowed_per_hour == pytest.approx(112.5 * HOUR / 100), "windows of 100 s"


def test_a_passed_window_is_probed_one_call_at_a_time(clocks: Clocks) -> None:
    p = pacer(clocks)
    in_header_mode(p, clocks, window=10)
    clocks.advance(10)
    assert p.view().remaining is None, "unknown once the reset time has passed"
    probe = admitted(p.poll("a"))
    assert probe.probe
    assert waits(p.poll("a")) > 0
    p.release(probe)  # not sent after all: the next caller probes
    probe = admitted(p.poll("a"))
    assert probe.probe
    p.observe(probe, Report(99, clocks.wall + 10, 1), 200)
    assert not admitted(p.poll("a")).probe


def test_a_vendor_without_headers_is_not_paced(clocks: Clocks) -> None:
    p = pacer(clocks)
    probe = admitted(p.poll("a"))
    p.observe(probe, Report(), 500)
    assert mode(p) == "unknown", "a failure proves nothing"
    probe = admitted(p.poll("a"))
    p.observe(probe, Report(), 200)
    assert mode(p) == "free"
    for _ in range(1000):
        admitted(p.poll("a"))
    assert p.view() == p.view().__class__(None, None, None, None)
    # Headers after all: pacing starts.
    p.observe(admitted(p.poll("a")), Report(10, T0 + 60, 1), 200)
    assert p.mode == "headers"


def test_calls_per_hour_pace_and_cap(clocks: Clocks) -> None:
    p = pacer(clocks, calls_per_hour=100, reserve_ratio=0.1, burst_ratio=0.1)
    assert p.mode == "hourly"
    for _ in range(9):
        admitted(p.poll("a"))
    assert waits(p.poll("a")) == pytest.approx(HOUR / 90)
    # The sliding hour caps what a full bucket would allow.
    p = pacer(clocks, calls_per_hour=100, reserve_ratio=0.1, burst_ratio=1.0)
    tickets = [admitted(p.poll("a")) for _ in range(90)]
    clocks.advance(HOUR / 2)
    assert waits(p.poll("a")) == pytest.approx(HOUR / 2)
    p.release(tickets[-1])  # a call that was not made leaves the log
    admitted(p.poll("a"))
    assert p.view().remaining == 0
    assert p.view().allowed_per_hour == pytest.approx(90)
    clocks.advance(HOUR / 2)
    assert p.view().remaining == pytest.approx(89), "the first 89 have left the hour"


def test_dump_and_restore(clocks: Clocks) -> None:
    p = pacer(clocks, burst_ratio=1.0)
    in_header_mode(p, clocks)
    p.observe(admitted(p.poll("seats")), Report(90, T0 + 100, 3), 200)
    admitted(p.poll("seats"))  # in flight at the dump: charged by the time it is read
    state = p.dump()
    assert state["remaining"] == 87
    again = pacer(clocks, burst_ratio=1.0)
    again.restore(state)
    assert again.mode == "headers"
    assert again.cost("seats") == 3
    assert again.view() == p.view()
    assert waits(again.poll("a")) > 0, "no burst right after a restart"
    clocks.advance(100)
    assert admitted(again.poll("a")).probe, "the window passed while we were down"

    hourly = pacer(clocks, calls_per_hour=100, burst_ratio=1.0)
    for _ in range(40):
        admitted(hourly.poll("a"))
        clocks.advance(60)
    restored = pacer(clocks, calls_per_hour=100, burst_ratio=1.0)
    restored.restore(hourly.dump())
    assert restored.view() == hourly.view()
    assert restored.view().remaining == pytest.approx(90 - 40)


def test_a_damaged_state_is_ignored(clocks: Clocks) -> None:
    p = pacer(clocks)
    p.restore({"remaining": "x", "resets": None, "limit": -1, "cost.a": float("nan")})
    p.restore({"headers_seen": True, "hour_calls": 5, "hour_first": 10, "hour_last": 1})
    assert p.mode == "unknown"
    assert p.cost("a") == 1
    assert admitted(p.poll("a")).probe


def test_a_released_probe_wakes_the_next_caller() -> None:
    async def main() -> None:
        p = Pacer(BudgetConfig())
        first = await p.acquire("a")
        waiting = asyncio.create_task(p.acquire("a"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        p.release(first)
        assert (await asyncio.wait_for(waiting, 10)).probe

    asyncio.run(main())


def test_budget_settings_and_the_gate_cap() -> None:
    gate = RateGate(max_seconds=1)
    gate.block_for(3600)
    assert 0 < gate.remaining() <= 1
    settings = DattoSettings.model_validate(datto_source("http://127.0.0.1:9"))
    assert settings.budget == BudgetConfig()
    assert settings.budget.calls_per_hour is None
    with pytest.raises(ValidationError):
        BudgetConfig(reserve_ratio=1)
    with pytest.raises(ValidationError):
        BudgetConfig.model_validate({"calls_per_hour": 100, "typo": 1})


# Against the simulator.


@pytest.fixture
def budget_sim() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(customers=4, seats_per_customer=3, seed=5, budget=20, budget_window_seconds=2)
    with ServerThread(sim.app()) as server:
        yield sim, server.url


def datto_client(url: str, **overrides: Any) -> VendorClient:
    settings = DattoSettings.model_validate(datto_source(url, **overrides))
    return VendorClient.for_source(
        settings,
        auth=httpx.BasicAuth("demo-public", "demo-private"),
        stats=ApiStats(),
        transport=None,
    )


def paths(sim: Simulator) -> list[tuple[str, str]]:
    ids = [c.id for c in sim.fleet.customers]
    return [("domains", "/v1/saas/domains")] + [
        (kind, f"/v1/saas/{cid}/{kind}") for cid in ids for kind in ("seats", "applications")
    ]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):
        # Polling: the condition is the simulator's, in another thread, with no event to await.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def demand(
    workers: int, call: Callable[[int], Awaitable[Any]], done: Callable[[], bool]
) -> None:
    """Workers calling back to back until ``done``, then cancelled; a failed call fails."""

    async def worker(n: int) -> None:
        while True:
            await call(n)
            n += workers

    tasks = [asyncio.create_task(worker(n)) for n in range(workers)]
    try:
        await until(lambda: done() or any(t.done() for t in tasks))
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    assert not failures, failures


def test_headers_pace_calls_to_use_the_budget_without_a_429(
    budget_sim: tuple[Simulator, str],
) -> None:
    sim, url = budget_sim
    targets = paths(sim)

    async def main() -> VendorClient:
        client = datto_client(url, max_concurrency=4)
        try:
            # Far more demand than 20 per 2 s, until 3 whole windows have passed.
            await demand(
                8,
                lambda n: client.get_json(*targets[n % len(targets)]),
                lambda: len(sim.budget_spent) >= 5,
            )
        finally:
            await client.aclose()
        return client

    client = asyncio.run(main())
    stats = httpx.get(url + "/_sim/stats").json()
    assert stats["responses_429"] == 0
    assert stats["budget"]["rejected"] == 0
    # The first window was under way before the first call, the last one is not over.
    windows = stats["budget"]["windows"][1:4]
    assert all(w["spent"] <= 20 - 2 for w in windows), "the reserve is left alone"
    # Over the three: a call paced into one window's last moments may land in the next one.
    assert sum(w["spent"] for w in windows) >= 0.85 * 3 * (20 - 2), windows
    assert client.pacer.mode == "headers"
    assert client.pacer.view().allowed_per_hour == pytest.approx(18 * HOUR / 2)
    assert not [key for key in client.stats.requests if key[1] == "429"]
    assert client.stats.limit_cost["seats"] > 0
    again = Pacer(BudgetConfig())
    again.restore(client.pacer.dump())
    assert again.view().allowed_per_hour == client.pacer.view().allowed_per_hour


def test_calls_per_hour_pace_a_vendor_that_reports_no_budget() -> None:
    sim = Simulator(
        customers=2, seats_per_customer=2, budget=6, budget_window_seconds=2, budget_headers=False
    )
    with ServerThread(sim.app()) as server:

        async def main() -> tuple[VendorClient, float]:
            started = time.monotonic()
            budget = {"calls_per_hour": 3600, "reserve_ratio": 0.1, "burst_ratio": 0.001}
            client = datto_client(server.url, budget=budget)
            try:
                await demand(
                    4,
                    lambda _: client.get_json("domains", "/v1/saas/domains"),
                    lambda: sim.calls["datto.domains"] >= 7,
                )
            finally:
                await client.aclose()
            return client, time.monotonic() - started

        client, elapsed = asyncio.run(main())
        stats = httpx.get(server.url + "/_sim/stats").json()
    assert client.stats.limit_remaining is None
    assert client.pacer.mode == "hourly"
    assert stats["responses_429"] == 0
    # A burst of 3.24 calls, then 0.9 per second: 3,240 of 3,600 an hour.
    assert sim.calls["datto.domains"] <= 3.24 + 0.9 * elapsed
    assert client.pacer.view().allowed_per_hour == pytest.approx(3240)


def test_a_429_pauses_every_call_of_the_source_and_the_pause_holds_no_slot(
    budget_sim: tuple[Simulator, str],
) -> None:
    sim, url = budget_sim
    sim.budget = 100_000
    customer = sim.fleet.customers[0].id
    sim.set_faults([parse_fault(f"429@seats?customer={customer}&retry_after=2&times=1")])

    async def main() -> None:
        client = datto_client(url, max_concurrency=1)
        try:
            limited = asyncio.create_task(client.get_json("seats", f"/v1/saas/{customer}/seats"))
            await until(lambda: client.gate.remaining() > 0)
            other = asyncio.create_task(client.get_json("domains", "/v1/saas/domains"))
            await asyncio.sleep(0)  # to the gate
            # Both calls wait out the pause, and neither holds the source's only slot.
            assert not limited.done()
            assert not other.done()
            assert client.sending == 0
            await asyncio.wait_for(asyncio.gather(limited, other), 30)
        finally:
            await client.aclose()

    asyncio.run(main())
    refused = next(r for r in sim.requests if r.status == 429)
    after = [r for r in sim.requests if r.time > refused.time]
    assert {r.path for r in after} == {f"/v1/saas/{customer}/seats", "/v1/saas/domains"}
    assert all(r.status == 200 for r in after)
    assert min(r.time for r in after) >= refused.time + 2, "nothing was sent during the pause"


def test_a_call_waiting_out_its_backoff_holds_no_slot(budget_sim: tuple[Simulator, str]) -> None:
    sim, url = budget_sim
    sim.budget = 100_000
    customer = sim.fleet.customers[0].id
    seats = f"/v1/saas/{customer}/seats"
    sim.set_faults([parse_fault(f"500@seats?customer={customer}&times=1")])
    retry = {**RETRY, "initial_backoff_seconds": 3, "max_backoff_seconds": 3, "jitter_seconds": 0}

    async def main() -> None:
        client = datto_client(url, max_concurrency=1, retry=retry)
        try:
            failing = asyncio.create_task(client.get_json("seats", seats))
            await until(lambda: any(r.status == 500 for r in sim.requests))
            # With the slot held through the backoff, this would wait for the retry.
            await client.get_json("domains", "/v1/saas/domains")
            assert [r.status for r in sim.requests if r.path == seats] == [500]
            await asyncio.wait_for(failing, 30)
        finally:
            await client.aclose()

    asyncio.run(main())
    assert [r.status for r in sim.requests if r.path == seats] == [500, 200]


def test_a_429_pause_is_capped_by_max_retry_after(budget_sim: tuple[Simulator, str]) -> None:
    sim, url = budget_sim
    sim.budget = 100_000
    customer = sim.fleet.customers[0].id
    sim.set_faults([parse_fault(f"429@seats?customer={customer}&retry_after=600&times=1")])
    retry = {**RETRY, "max_retry_after_seconds": 1}

    async def main() -> None:
        client = datto_client(url, retry=retry)
        try:
            with pytest.raises(RateLimited):
                await client.get_json("seats", f"/v1/saas/{customer}/seats")
            assert 0 < client.gate.remaining() <= 1
            # Far sooner than the 600 s asked for.
            await asyncio.wait_for(client.get_json("domains", "/v1/saas/domains"), 20)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_spent_budget_pauses_until_the_reset_at_most_max_retry_after() -> None:
    sim = Simulator(customers=2, seats_per_customer=2, budget=3)  # an hourly window
    retry = {**RETRY, "max_retry_after_seconds": 1}
    budget = {"reserve_ratio": 0, "burst_ratio": 1}

    async def main(url: str) -> None:
        client = datto_client(url, retry=retry, budget=budget)
        try:
            for _ in range(3):
                await client.get_json("domains", "/v1/saas/domains")
            assert client.stats.limit_remaining == 0
            assert 0 < client.gate.remaining() <= 1
        finally:
            await client.aclose()

    with ServerThread(sim.app()) as server:
        asyncio.run(main(server.url))
    assert sim.budget_rejected.total() == 0


def test_a_token_fetched_inside_a_call_needs_no_slot_of_its_own(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    _, server = sim_server
    form = {
        "grant_type": "client_credentials",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "scope": "write",
    }

    async def main() -> None:
        async def fetch(_: Token | None) -> Token:
            reply = await client.request(
                "token", "POST", "/oauth/token", data=form, authenticated=False
            )
            return Token(reply.body["access_token"], time.monotonic() + 3600)

        tokens = TokenCache(fetch)
        retry = DattoSettings.model_validate(datto_source(server.url)).retry
        client = VendorClient(
            base_url=server.url,
            retry=retry,
            timeout=5,
            connect_timeout=5,
            auth=BearerAuth(tokens),
            max_concurrency=1,
        )
        try:
            calls = (client.get_json("customers", "/v1/customers") for _ in range(3))
            await asyncio.wait_for(asyncio.gather(*calls), 30)
        finally:
            await client.aclose()
        assert tokens.fetches == 1
        assert client.pacer.mode == "free"

    asyncio.run(main())

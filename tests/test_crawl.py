"""The crawl on its own, with a source defined here: publication customer by customer, resuming
after a cut, oldest first, truthful up, re-reads of changed customers. Real-socket behaviour
against the simulator is in test_crawl_live.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from exporter.config import CacheConfig
from exporter.http import ApiStats, VendorError
from exporter.model import Customer, Seat, Snapshot
from exporter.refresh import Scheduler, SourceRunner, SourceState
from exporter.source import Listing, Part, Reading, Store, read_root

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Fleet:
    """A vendor whose customer reads can be held, failed or hung, one customer at a time."""

    name = "fleet"
    vendor = "fleet"
    pacer = None

    def let_through(self, customer_id: str) -> None:
        assert self.held is not None
        self.held.setdefault(customer_id, asyncio.Event()).set()

    def __init__(self, clock: Clock, customers: int) -> None:
        self.stats = ApiStats()
        self.clock = clock
        self.customers = {str(i): f"Customer {i}" for i in range(customers)}
        self.order: list[str] = []
        self.failing: set[str] = set()
        self.hang = False
        # When set, each customer's read waits until the test lets that customer through.
        self.held: dict[str, asyncio.Event] | None = None
        self.delay = 0.0
        # Each read moves the clock on, so that customers' data have distinct ages.
        self.tick = 1.0

    async def listing(self, store: Store) -> Listing[str]:
        async def load() -> dict[str, str]:
            return dict(self.customers)

        customers, reading = await read_root(store, "customer list", "customers", load)
        return reading.listing(customers)

    async def read(self, store: Store, customer_id: str, unit: str) -> Part:
        reading = Reading(store)

        async def load() -> list[Seat]:
            self.order.append(customer_id)
            if self.held is not None:
                await self.held.setdefault(customer_id, asyncio.Event()).wait()
            if self.hang:
                await asyncio.sleep(3600)
            if self.delay:
                await asyncio.sleep(self.delay)
            self.clock.now += self.tick
            if customer_id in self.failing:
                raise VendorError(f"customer {customer_id}: HTTP 503")
            return [Seat(customer_id, f"{customer_id}-1", "User", "user", "licensed")]

        seats = await reading.fetch("seats", "seats", customer_id, load)
        customer = Customer(customer_id, unit, "", "microsoft_365", "active")
        records = Snapshot(customers=(customer,), seats=tuple(seats.value) if seats else ())
        return reading.part(customer_id, records)

    async def aclose(self) -> None:
        return None


def runner_for(
    fleet: Fleet,
    clock: Clock,
    *,
    timeout: float = 30,
    workers: int = 2,
    stall: float = 600,
    ttl: float = 3600,
    seats_ttl: float | None = None,
) -> SourceRunner:
    endpoints = {"customers": ttl, "seats": seats_ttl or ttl}
    return SourceRunner(
        fleet,
        CacheConfig(endpoints=endpoints, max_age_seconds=86400 * 7),
        timeout,
        clock,
        workers=workers,
        stall_seconds=stall,
    )


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def seats(state: SourceState) -> set[str]:
    return {s.customer_id for p in state.parts.values() for s in p.records.seats}


def test_each_customer_is_published_as_soon_as_it_is_read() -> None:
    clock = Clock()
    fleet = Fleet(clock, 6)
    runner = runner_for(fleet, clock, workers=1)

    async def scenario() -> None:
        fleet.held = {}
        task = runner.refresh()
        await until(lambda: len(fleet.order) == 1)
        state = runner.state()
        assert not state.parts
        assert state.crawl.running
        assert state.crawl.total == 6
        assert state.crawl.progress == 0
        generations = [state.generation]
        for published, customer_id in enumerate(fleet.customers, 1):
            fleet.let_through(customer_id)
            await until(lambda n=published: len(runner.state().parts) == n)  # type: ignore[misc]
            state = runner.state()
            assert state.up, "up as soon as a customer was read"
            generations.append(state.generation)
        await task
        assert generations == sorted(set(generations)), "every publication is a new generation"
        state = runner.state()
        assert not state.crawl.running
        assert state.crawl.read == 6
        assert state.crawl.progress == 1
        assert list(state.parts) == list(fleet.customers), "the vendor's order"

    run(scenario())


def test_a_cut_crawl_keeps_what_it_read_and_the_next_resumes_oldest_first() -> None:
    clock = Clock()
    fleet = Fleet(clock, 12)
    fleet.delay = 0.05
    runner = runner_for(fleet, clock, timeout=0.3, workers=1)

    async def scenario() -> None:
        await runner.refresh()
        # Crawls were cut after 0.3 s each and chained until every customer was read.
        assert len(runner.state().parts) == 12
        assert fleet.order == list(fleet.customers), "each customer once, in order"
        assert runner.state().up

        # Everything expires; customers were read one tick apart, so the oldest come first.
        clock.now += 3600
        fleet.order.clear()
        fleet.customers["5"] = "Customer 5 renamed"
        fleet.delay = 0.0
        await runner.refresh()
        ages = {cid: p.own for cid, p in runner.state().parts.items()}
        assert sorted(fleet.order) == sorted(fleet.customers)
        assert fleet.order == sorted(fleet.order, key=lambda c: ages[c]), "oldest first"

    run(scenario())


def test_a_changed_listing_entry_is_read_again_and_nothing_else() -> None:
    clock = Clock()
    fleet = Fleet(clock, 5)
    runner = runner_for(fleet, clock, ttl=600, seats_ttl=3600)

    async def scenario() -> None:
        await runner.refresh()
        before = runner.state()
        records = {cid: p.records for cid, p in before.parts.items()}
        clock.now += 601  # the customer list expires; the seats were read after it, later
        fleet.order.clear()
        fleet.customers["3"] = "Customer 3 renamed"
        fleet.customers["9"] = "Customer 9"
        del fleet.customers["0"]
        await runner.refresh()
        after = runner.state()
        # The renamed customer is read again from the cache (its seats are still fresh): only
        # the new one costs a call.
        assert fleet.order == ["9"]
        assert "0" not in after.parts, "a customer the vendor no longer lists is gone"
        assert [c.name for c in after.parts["3"].records.customers] == ["Customer 3 renamed"]
        for cid in ("1", "2", "4"):
            assert after.parts[cid].records is records[cid], "an unchanged part is the same"
        assert after.generation > before.generation

    run(scenario())


def test_rereading_identical_records_keeps_them_and_the_generation() -> None:
    clock = Clock()
    fleet = Fleet(clock, 3)
    runner = runner_for(fleet, clock, ttl=60)

    async def scenario() -> None:
        await runner.refresh()
        before = runner.state()
        clock.now += 3600
        await runner.refresh()
        after = runner.state()
        assert len(fleet.order) == 6, "every customer read twice"
        assert after.generation == before.generation, "nothing to render again"
        for cid, part in after.parts.items():
            assert part.records is before.parts[cid].records
            assert part.oldest > before.parts[cid].oldest, "but the data is fresher"

    run(scenario())


def test_reads_that_all_fail_mark_the_source_down_while_the_crawl_runs() -> None:
    clock = Clock()
    fleet = Fleet(clock, 8)
    runner = runner_for(fleet, clock, workers=1)

    async def scenario() -> None:
        await runner.refresh()
        assert runner.state().up
        clock.now += 7200
        fleet.failing = set(fleet.customers)
        held: dict[str, asyncio.Event] = {}
        fleet.held = held
        task = runner.refresh()
        for customer_id in list(fleet.customers)[:3]:
            fleet.let_through(customer_id)
        await until(lambda: runner.state().crawl.failed == 3)
        state = runner.state()
        assert state.crawl.running, "still crawling"
        assert not state.up, "three failed reads in a row: down before the crawl ends"
        assert "HTTP 503" in (state.error or "")
        assert seats(state) == set(fleet.customers), "last good data kept"
        fleet.failing.clear()
        fleet.held = None
        for event in held.values():
            event.set()
        await task
        assert runner.state().up, "a good read brings it back"

    run(scenario())


def test_one_failing_customer_does_not_take_the_source_down() -> None:
    clock = Clock()
    fleet = Fleet(clock, 6)
    fleet.failing = {"2"}
    runner = runner_for(fleet, clock, workers=1)

    async def scenario() -> None:
        await runner.refresh()
        state = runner.state()
        assert state.up
        assert state.parts["2"].error is not None
        assert state.snapshot is not None
        assert "2" in state.snapshot.customer_errors

    run(scenario())


def test_a_crawl_that_stops_progressing_is_down() -> None:
    clock = Clock()
    fleet = Fleet(clock, 4)
    runner = runner_for(fleet, clock, stall=300)

    async def scenario() -> None:
        await runner.refresh()
        clock.now += 7200
        fleet.hang = True
        task = runner.refresh()
        await until(lambda: len(fleet.order) >= 6)
        assert runner.state().up, "not yet stalled"
        clock.now += 301
        state = runner.state()
        assert state.crawl.running
        assert not state.up
        assert state.error == "no progress for 300s"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(scenario())


def test_scrapes_wait_for_the_first_crawl_and_not_for_a_long_one_under_way() -> None:
    clock = Clock()
    fleet = Fleet(clock, 4)
    runner = runner_for(fleet, clock, ttl=60)
    scheduler = Scheduler([runner])

    async def scenario() -> None:
        (state,) = await scheduler.states(5)
        assert len(state.parts) == 4, "the first crawl was waited for"
        clock.now += 3600
        held: dict[str, asyncio.Event] = {}
        fleet.held = held
        (state,) = await scheduler.states(0.05)
        assert state.crawl.running, "this scrape started a crawl and waited its deadline"
        (state,) = await scheduler.states(5)
        assert state.crawl.running, "the next scrape does not wait for it"
        assert len(state.parts) == 4, "and serves what was published"
        fleet.held = None
        for event in held.values():
            event.set()
        task = runner.task
        assert task is not None
        await task

    run(scenario())


def test_parts_past_the_maximum_age_go_one_by_one() -> None:
    clock = Clock()
    fleet = Fleet(clock, 3)
    config = CacheConfig(endpoints={"customers": 10, "seats": 1000}, max_age_seconds=100)
    runner = SourceRunner(fleet, config, 30, clock)

    async def scenario() -> None:
        await runner.refresh()
        clock.now += 70
        await runner.refresh()  # a fresh customer list: the seats are the oldest data now
        oldest = min(runner.state().parts.values(), key=lambda p: p.oldest)
        assert oldest.oldest == oldest.own
        clock.now = oldest.oldest + 100.5
        remaining = runner.state().parts
        assert oldest.customer_id not in remaining
        assert remaining, "younger customers stay"

    run(scenario())

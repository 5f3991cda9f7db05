"""The cache on its own: TTLs, single flight, stale data, maximum age (with a fake clock)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exporter.cache import EndpointCache
from exporter.config import CacheConfig
from exporter.http import ApiStats, VendorError
from exporter.model import Customer, Snapshot
from exporter.refresh import Scheduler, SourceRunner
from exporter.source import FetchError, Listing, Part, Reading, Store, read_root


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_single_flight_and_ttl_per_endpoint() -> None:
    clock = Clock()
    cache = EndpointCache(CacheConfig(ttl_seconds=60, endpoints={"seats": 10}), clock)
    calls = {"seats": 0, "domains": 0}

    def loader(endpoint: str) -> Any:
        async def load() -> str:
            calls[endpoint] += 1
            await asyncio.sleep(0.01)
            return f"{endpoint}-{calls[endpoint]}"

        return load

    async def scenario() -> None:
        results = await asyncio.gather(
            *(cache.fetch("seats", "c1", loader("seats")) for _ in range(20))
        )
        assert {r.value for r in results} == {"seats-1"}
        await cache.fetch("domains", "", loader("domains"))
        clock.now += 11  # past the seats TTL, within the domains TTL
        assert (await cache.fetch("seats", "c1", loader("seats"))).value == "seats-2"
        assert (await cache.fetch("domains", "", loader("domains"))).value == "domains-1"

    run(scenario())
    assert calls == {"seats": 2, "domains": 1}


def test_failure_returns_stale_data_until_the_maximum_age() -> None:
    clock = Clock()
    cache = EndpointCache(CacheConfig(ttl_seconds=10, max_age_seconds=100), clock)
    fail = False

    async def load() -> str:
        if fail:
            raise VendorError("GET /x: HTTP 504")
        return "good"

    async def scenario() -> None:
        nonlocal fail
        await cache.fetch("seats", "c", load)
        fail = True
        clock.now += 50
        with pytest.raises(FetchError) as info:
            await cache.fetch("seats", "c", load)
        assert info.value.reason == "GET /x: HTTP 504"
        assert info.value.stale is not None
        assert info.value.stale.value == "good"
        clock.now += 60  # 110 s old: past the maximum age
        with pytest.raises(FetchError) as info:
            await cache.fetch("seats", "c", load)
        assert info.value.stale is None

    run(scenario())


def test_failed_loads_wait_before_trying_again() -> None:
    clock = Clock()
    cache = EndpointCache(CacheConfig(ttl_seconds=300), clock)

    async def load() -> str:
        raise VendorError("boom")

    async def scenario() -> None:
        with pytest.raises(FetchError) as info:
            await cache.fetch("domains", "", load)
        assert info.value.retry_at == clock.now + 60

    run(scenario())


class FakeSource:
    name = "fake"
    vendor = "fake"
    pacer = None

    def __init__(self) -> None:
        self.stats = ApiStats()
        self.fail = False
        self.listings = 0

    async def listing(self, store: Store) -> Listing[Customer]:
        self.listings += 1

        async def load() -> list[Customer]:
            if self.fail:
                raise VendorError("down")
            return [Customer("1", "One", "one.example", "microsoft_365", "active")]

        customers, reading = await read_root(store, "customers", "domains", load)
        return reading.listing({c.id: c for c in customers})

    async def read(self, store: Store, customer_id: str, unit: Customer) -> Part:
        return Reading(store).part(customer_id, Snapshot(customers=(unit,)))

    async def aclose(self) -> None:
        return None


def test_runner_keeps_last_good_data_marks_down_and_drops_it_past_max_age() -> None:
    clock = Clock()
    source = FakeSource()
    runner = SourceRunner(source, CacheConfig(ttl_seconds=30, max_age_seconds=600), 5, clock)
    scheduler = Scheduler([runner])

    async def scenario() -> None:
        (state,) = await scheduler.states(1)
        assert state.up
        assert state.snapshot is not None
        generation = state.generation
        (state,) = await scheduler.states(1)
        assert source.listings == 1, "nothing due within the TTL"
        source.fail = True
        clock.now += 31
        (state,) = await scheduler.states(1)
        assert source.listings == 2
        assert not state.up
        assert state.error == "customer list: customers: down"
        assert state.snapshot is not None, "last good data kept beside up=0"
        assert [c.id for c in state.snapshot.customers] == ["1"]
        assert state.generation == generation, "the records did not change"
        clock.now += 600
        (state,) = await scheduler.states(1)
        assert not state.parts, "data past the maximum age is dropped"
        assert state.generation > generation

    run(scenario())


def test_runner_refresh_timeout() -> None:
    class Hanging(FakeSource):
        async def listing(self, store: Store) -> Listing[Customer]:
            await asyncio.sleep(30)
            raise AssertionError("unreachable")

    runner = SourceRunner(Hanging(), CacheConfig(), 0.2)

    async def scenario() -> None:
        (state,) = await Scheduler([runner]).states(5)
        assert not state.up
        assert state.refreshed
        assert state.error == "refresh timed out after 0.2s"

    run(scenario())

"""What caching the exposition buys: serving a scrape from cached bytes versus rendering it.

Prints ratios (bigger is better unless said otherwise) for synthetic fleets, so results compare
across machines:

    python bench/bench_scrape.py [--customers 200] [--seats 100] [--scrapes 30]
                                 [--crawl-customers 1000] [--crawl-seats 50]

The first fleet gives the figures of a whole render against a cached scrape. The second, one
part per customer as a crawl publishes them, gives what a crawl's scrapes cost: assembling the
static body after one customer changed, the per-scrape tail, and gzip against plain.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import itertools
import time
import tracemalloc
from collections.abc import Callable

from exporter.budget import BudgetView
from exporter.chunks import Chunks, assemble, tail
from exporter.config import MetricsConfig
from exporter.crawl import CrawlView
from exporter.exposition import Exposition
from exporter.http import ApiStats
from exporter.model import ApplicationBackup, Customer, Seat, Snapshot
from exporter.refresh import SourceState
from exporter.render import encode, render, render_dynamic, render_static, static_families
from exporter.source import Part

NOW = 1_780_000_000.0
APPS = ("Office365Exchange", "OneDrive", "SharePoint", "Teams")


def records(c: int, seats: int, backup: float = NOW - 3600) -> Snapshot:
    customer = str(c)
    return Snapshot(
        customers=(
            Customer(customer, f"Customer {c}", f"c{c}.example", "microsoft_365", "active", seats),
        ),
        seats=tuple(
            Seat(customer, f"seat-{c}-{s}", f"User {s}", "user", "licensed", NOW - s * 60, True)
            for s in range(seats)
        ),
        applications=tuple(
            ApplicationBackup(customer, app, backup, "success", seats, seats, seats) for app in APPS
        ),
    )


def fleet(customers: int, seats: int) -> list[SourceState]:
    stats = ApiStats()
    for endpoint in ("customers", "seats", "applications", "domains"):
        stats.requests[endpoint, "200"] = customers
        stats.limit_cost[endpoint] = customers
    parts = {
        str(c): Part(str(c), records(c, seats), NOW - 30 - c, NOW + 3600) for c in range(customers)
    }
    state = SourceState(
        "datto",
        "datto",
        stats,
        generation=1,
        parts=parts,
        listed=True,
        up=True,
        refreshed=True,
        last_success=NOW - 30,
        crawl=CrawlView(True, customers, customers // 2, 0, NOW - 60, NOW - 1),
        budget=BudgetView(900.0, 1800.0, 1500.0, 2000.0),
    )
    return [state]


def once(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def per_call(fn: Callable[[], object], repeat: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def whole_render(args: argparse.Namespace) -> None:
    states = fleet(args.customers, args.seats)
    config = MetricsConfig()
    exposition = Exposition(config)

    full = per_call(lambda: render(states, config, NOW), args.scrapes)
    # The floor: prometheus_client encoding families already built, so the ratio shows what
    # turning records into rows (the catalogue, labels by name, sorting) costs on top.
    families = static_families(states, config)
    floor = per_call(lambda: encode(families, openmetrics=False), args.scrapes)
    cached = per_call(
        lambda: exposition.body(states, NOW, openmetrics=False, gzip=False), args.scrapes * 10
    )
    body = render(states, config, NOW)
    full_gzip = per_call(lambda: gzip.compress(render(states, config, NOW), 6), args.scrapes)
    cached_gzip = per_call(
        lambda: exposition.body(states, NOW, openmetrics=False, gzip=True), args.scrapes * 10
    )
    compressed = exposition.body(states, NOW, openmetrics=False, gzip=True).content

    tracemalloc.start()
    render(states, config, NOW)
    _, render_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    series = body.count(b"\n") - 2 * body.count(b"# TYPE")
    print(
        f"fleet: {args.customers} customers x {args.seats} seats, {series} series, "
        f"{len(body) / 1e6:.1f} MB text, {len(compressed) / 1e6:.2f} MB gzip"
    )
    print(f"scrape, plain: cached is {full / cached:,.0f}x faster than rendering per scrape")
    print(f"scrape, gzip:  cached is {full_gzip / cached_gzip:,.0f}x faster than render+gzip")
    print(f"render / encoding floor: {full / floor:.2f}x")
    print(f"gzip ratio: {len(body) / len(compressed):.1f}x smaller on the wire")
    print(f"render peak memory / body size: {render_peak / len(body):.1f}x")


def one_changed(
    state: SourceState, config: MetricsConfig, repeat: int, changes: int
) -> tuple[float, float, float]:
    """Seconds to assemble the static body after one customer changed, to render the whole
    static body, and to encode every chunk from cold."""
    chunks = Chunks(config)
    cold = once(lambda: assemble([state], chunks, config, openmetrics=False))
    first = state.parts["0"]
    other = dataclasses.replace(first, records=records(0, len(first.records.seats), NOW - 60))
    variants = itertools.cycle((other, first))

    def change() -> None:
        nonlocal state
        parts = {**state.parts, "0": next(variants)}
        state = dataclasses.replace(state, parts=parts, generation=state.generation + 1)
        assemble([state], chunks, config, openmetrics=False)
        chunks.retain([state])

    incremental = per_call(change, changes)
    full = per_call(lambda: render_static([state], config, openmetrics=False), repeat)
    return incremental, full, cold


def crawl(args: argparse.Namespace) -> None:
    states = fleet(args.crawl_customers, args.crawl_seats)
    config = MetricsConfig()
    repeat = max(args.scrapes // 10, 2)
    incremental, full, cold = one_changed(states[0], config, repeat, args.scrapes)

    exposition = Exposition(config)
    tracemalloc.start()
    exposition.body(states, NOW, openmetrics=False, gzip=False)
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    static = exposition.body(states, NOW, openmetrics=False, gzip=False).content
    live = render_dynamic(states, NOW, openmetrics=False)
    static = static.removesuffix(live)
    ages = assemble(states, exposition.chunks, config, openmetrics=False).ages

    def scrape(gzipped: bool) -> Callable[[], object]:
        return lambda: exposition.body(states, NOW, openmetrics=False, gzip=gzipped)

    plain = per_call(scrape(False), args.scrapes * 10)
    zipped = per_call(scrape(True), args.scrapes * 10)
    tail_cost = per_call(lambda: tail(states, ages, NOW, openmetrics=False), args.scrapes * 10)
    tail_render = per_call(lambda: render_dynamic(states, NOW, openmetrics=False), args.scrapes)
    serve = per_call(lambda: static + live, args.scrapes * 10)

    # The first gzip scrape after a change compresses the new static body once.
    def first_gzip() -> None:
        nonlocal states
        states = [dataclasses.replace(states[0], generation=states[0].generation + 1)]
        exposition.body(states, NOW, openmetrics=False, gzip=True)

    first_zipped = per_call(first_gzip, repeat)

    capped = MetricsConfig(max_seat_series=args.crawl_customers * args.crawl_seats // 2)
    capped_incremental, capped_full, _ = one_changed(states[0], capped, repeat, repeat)

    lines = live.count(b"\n")
    print(
        f"crawl fleet: {args.crawl_customers} customers x {args.crawl_seats} seats, "
        f"{len(static) / 1e6:.1f} MB static, tail {lines} lines"
    )
    print(
        f"one customer changed: assembling is {full / incremental:,.0f}x faster than a whole "
        f"static render ({incremental * 1e3:.1f} ms vs {full * 1e3:.0f} ms)"
    )
    print(
        f"cold start: encoding every chunk / a whole static render: {cold / full:.2f}x "
        "(smaller is better)"
    )
    print(
        f"seats capped: one customer changed is {capped_full / capped_incremental:,.1f}x faster "
        f"than a whole static render ({capped_incremental * 1e3:.0f} ms)"
    )
    print(
        f"dynamic tail: {tail_cost * 1e3:.2f} ms per scrape, {tail_cost / serve:.1f}x serving "
        f"the cached bytes ({serve * 1e6:.0f} us); {tail_cost / plain:.0%} of a warm plain scrape"
    )
    print(f"dynamic tail, rendered whole / as served: {tail_render / tail_cost:.1f}x")
    print(
        f"warm scrape, gzip / plain: {zipped / plain:.2f}x (goal <= 1.5x; "
        f"{plain * 1e3:.2f} ms plain)"
    )
    print(
        f"first gzip scrape after a change / warm plain scrape: {first_zipped / plain:.0f}x "
        "(smaller is better)"
    )
    print(f"warm exposition memory / static body size: {retained / len(static):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seats", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--crawl-customers", type=int, default=1000)
    parser.add_argument("--crawl-seats", type=int, default=50)
    args = parser.parse_args()
    whole_render(args)
    crawl(args)


if __name__ == "__main__":
    main()

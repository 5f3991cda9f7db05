"""What caching the exposition buys: serving a scrape from cached bytes versus rendering it.

Prints ratios (bigger is better) for a synthetic fleet, so results compare across machines:

    python bench/bench_scrape.py [--customers 200] [--seats 100] [--scrapes 50]
"""

from __future__ import annotations

import argparse
import gzip
import time
import tracemalloc
from collections.abc import Callable

from exporter.config import MetricsConfig
from exporter.exposition import Exposition
from exporter.http import ApiStats
from exporter.model import ApplicationBackup, Customer, Seat, Snapshot
from exporter.refresh import SourceState
from exporter.render import encode, render, static_families

NOW = 1_780_000_000.0
APPS = ("Office365Exchange", "OneDrive", "SharePoint", "Teams")


def fleet(customers: int, seats: int) -> list[SourceState]:
    snapshot = Snapshot(
        customers=tuple(
            Customer(str(c), f"Customer {c}", f"c{c}.example", "microsoft_365", "active", seats)
            for c in range(customers)
        ),
        seats=tuple(
            Seat(str(c), f"seat-{c}-{s}", f"User {s}", "user", "licensed", NOW - s * 60, True)
            for c in range(customers)
            for s in range(seats)
        ),
        applications=tuple(
            ApplicationBackup(str(c), app, NOW - 3600, "success", seats, seats, seats)
            for c in range(customers)
            for app in APPS
        ),
        oldest_data=NOW - 30,
    )
    return [SourceState("datto", "datto", ApiStats(), 1, snapshot, True, True, NOW - 30)]


def per_call(fn: Callable[[], object], repeat: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seats", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()

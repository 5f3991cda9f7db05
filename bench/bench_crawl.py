"""Crawling a real-sized fleet at vendor speed, against the simulator in its own process.

Prints ratios against a floor measured or computed in the same run, so results compare across
machines:

- P6: a fleet of customers x seats at per-endpoint latency scaled from Datto's real figures
  (/seats 50 s, /applications 19 s, /domains 34 s a call; scaled 1/500 by default). The time
  to publish the first customer, half and all of the fleet, against the floor
  calls x latency / concurrency. Goal: all within 1.2x the floor. Also the exporter's RSS.
- Acceptance: 300 customers at 200 ms a call, max_concurrency 4, refresh_timeout_seconds 20,
  scraped every 5 s: at least 100 customers within 45 s and all 300 within about 2 minutes.
- P7: a budget of B calls per window, a demand above it, over 3 windows: responses of 429
  (goal: 0) and the share of the budget used (goal: at least 90 %).

    python bench/bench_crawl.py [--customers 1000] [--seats 50] [--scale 500]
                                [--skip p6,acceptance,p7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from exporter.app import build_scheduler
from exporter.config import build_config
from exporter.refresh import Scheduler, SourceRunner

# Datto's measured seconds per call (API-NOTES: /seats 38-60 s, /applications ~19 s,
# /domains ~34 s); /seats at 50 s.
REAL_SECONDS = {"domains": 34.0, "seats": 50.0, "applications": 19.0}


@dataclass
class Simulator:
    process: subprocess.Popen[str]
    url: str

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + "/_sim/stats", timeout=30).json()
        return data


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[Simulator]:
    """The simulator in a process of its own, so that its work does not share the
    exporter's interpreter lock."""
    command = [sys.executable, "-m", "exporter", "simulator", "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(
        [*command, "--scenario", "healthy", "--shape", "live", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = re.search(r"vendor API simulator: (\S+)", line)
            if found:
                yield Simulator(process, found.group(1))
                break
        else:
            raise RuntimeError("the simulator did not start")
    finally:
        process.terminate()
        process.wait(10)


def datto(url: str, **source: Any) -> dict[str, Any]:
    return {
        "name": "datto",
        "type": "datto",
        "base_url": url,
        "public_key": "demo-public",
        "private_key": "demo-private",
        "timeout_seconds": 60,
        **source,
    }


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def published_at(
    runner: SourceRunner, marks: dict[str, int], started: float
) -> dict[str, float]:
    """When the number of published customers first reached each mark."""
    reached: dict[str, float] = {}
    while len(reached) < len(marks):
        count = len(runner.crawl.parts)
        now = time.monotonic() - started
        for name, mark in marks.items():
            if name not in reached and count >= mark:
                reached[name] = now
        await asyncio.sleep(0.005)
    return reached


async def p6(customers: int, seats: int, scale: float, concurrency: int) -> None:
    latency = {k: v * 1000 / scale for k, v in REAL_SECONDS.items()}
    spec = ",".join(f"{k}={v:g}" for k, v in latency.items())
    with simulator(
        "--customers", str(customers), "--seats-per-customer", str(seats), "--latency-ms", spec
    ) as sim:
        config = build_config(
            {
                "cache": {"warm_up": False},
                "sources": [datto(sim.url, max_concurrency=concurrency)],
            }
        )
        scheduler = build_scheduler(config)
        (runner,) = scheduler.runners
        rss_before = rss_mib()
        started = time.monotonic()
        marks = {"first": 1, "half": customers // 2, "all": customers}
        watch = asyncio.create_task(published_at(runner, marks, started))
        await runner.refresh()
        reached = await watch
        rss_after = rss_mib()
        await scheduler.stop()
        calls = sim.stats()["calls"]
    per_customer = (latency["seats"] + latency["applications"]) / 1000
    floors = {
        # A customer's two calls go out together: the first customer waits for the slower.
        "first": (latency["domains"] + max(latency["seats"], latency["applications"])) / 1000,
        "half": latency["domains"] / 1000 + per_customer * (customers // 2) / concurrency,
        "all": latency["domains"] / 1000 + per_customer * customers / concurrency,
    }
    print(
        f"P6: {customers} customers x {seats} seats, latency {spec} ms, concurrency {concurrency}"
    )
    print(f"    vendor calls: {calls}")
    for name in ("first", "half", "all"):
        print(
            f"    {name:>5}: {reached[name]:7.2f} s  floor {floors[name]:7.2f} s  "
            f"ratio {reached[name] / floors[name]:.2f}x"
        )
    print(
        f"    RSS: {rss_after:.0f} MiB after, {rss_after - rss_before:.0f} MiB for the fleet "
        f"({(rss_after - rss_before) * 1024 / customers:.0f} KiB per customer)"
    )


async def scrape_loop(scheduler: Scheduler, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await scheduler.states(interval * 2 - 0.5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def acceptance() -> None:
    customers = 300
    with simulator(
        "--customers", str(customers), "--seats-per-customer", "10", "--latency-ms", "200"
    ) as sim:
        config = build_config(
            {
                "cache": {"warm_up": False},
                "sources": [datto(sim.url, max_concurrency=4, refresh_timeout_seconds=20)],
            }
        )
        scheduler = build_scheduler(config)
        (runner,) = scheduler.runners
        started = time.monotonic()
        stop = asyncio.Event()
        scrapes = asyncio.create_task(scrape_loop(scheduler, 5.0, stop))
        reached = await published_at(runner, {"100": 100, "all": customers}, started)
        stop.set()
        await scrapes
        await scheduler.stop()
    floor = (customers * 2 + 1) * 0.2 / 4
    print("Acceptance: 300 customers at 200 ms a call, max_concurrency 4,")
    print("    refresh_timeout_seconds 20, a scrape every 5 s")
    print(f"    100 published after {reached['100']:.1f} s (goal: within 45 s)")
    print(
        f"    all published after {reached['all']:.1f} s (goal: about 2 min; floor {floor:.1f} s)"
    )


async def p7(budget: int, window: float, windows: int, reserve: float) -> None:
    customers = 40
    with simulator(
        "--customers",
        str(customers),
        "--seats-per-customer",
        "5",
        "--budget",
        str(budget),
        "--budget-window",
        str(window),
        "--latency-ms",
        "5",
    ) as sim:
        config = build_config(
            {
                # A TTL far below what the budget can serve: demand well above supply.
                "cache": {"warm_up": False, "ttl_seconds": 1},
                "sources": [datto(sim.url, max_concurrency=4, budget={"reserve_ratio": reserve})],
            }
        )
        scheduler = build_scheduler(config)
        stop = asyncio.Event()
        scrapes = asyncio.create_task(scrape_loop(scheduler, 0.5, stop))
        await asyncio.sleep(window * (windows + 1))
        stop.set()
        await scrapes
        await scheduler.stop()
        stats = sim.stats()
    spent = [w["spent"] for w in stats["budget"]["windows"]]
    full = spent[1 : windows + 1]
    used = sum(full) / (budget * len(full))
    print(
        f"P7: budget {budget} per {window:g} s window, reserve {reserve:.0%}, "
        f"{len(full)} whole windows"
    )
    print(f"    spent per window: {full} (the first, partial one: {spent[0]})")
    print(f"    responses of 429: {stats['responses_429']} (goal: 0)")
    print(
        f"    budget used: {used:.1%} (goal: >= 90 %); of the budget less the reserve: "
        f"{sum(full) / (budget * (1 - reserve) * len(full)):.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seats", type=int, default=50)
    parser.add_argument("--scale", type=float, default=500, help="real latency / simulated")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--budget", type=int, default=120)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--skip", default="", help="comma-separated: p6, acceptance, p7")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "p6" not in skip:
        asyncio.run(p6(args.customers, args.seats, args.scale, args.concurrency))
    if "acceptance" not in skip:
        asyncio.run(acceptance())
    if "p7" not in skip:
        for reserve in (0.05, 0.1):
            asyncio.run(p7(args.budget, args.window, 3, reserve))


if __name__ == "__main__":
    main()

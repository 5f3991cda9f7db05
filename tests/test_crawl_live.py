"""The crawl against the simulator on a real socket: a fleet larger than one refresh can read is
published while it is crawled, resumes where a cut crawl stopped, shows each customer's data age
and the crawl's progress, and reports up truthfully while a crawl hangs."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.app import build_app
from exporter.cli import demo_config
from exporter.config import build_config
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from tests.conftest import ServerThread, datto_source, series, value

CUSTOMERS = 30


def config(url: str, cache: dict[str, Any] | None = None, **source: Any) -> Any:
    return build_config(
        {
            "cache": {"warm_up": False, **(cache or {})},
            "sources": [datto_source(url, **source)],
        }
    )


def scrape(exporter: ServerThread, timeout: float = 0.5) -> str:
    response = httpx.get(
        exporter.url + "/metrics",
        headers={"X-Prometheus-Scrape-Timeout-Seconds": str(timeout + 0.5)},
        timeout=30,
    )
    assert response.status_code == 200
    return response.text


def published(body: str) -> set[str]:
    return {labels["customer_id"] for labels, _ in series(body, "saas_backup_customer_info")}


def scrape_until(exporter: ServerThread, done: Any, limit: float = 60) -> str:
    deadline = time.monotonic() + limit
    while True:
        body = scrape(exporter)
        if done(body):
            return body
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_a_fleet_larger_than_one_refresh_is_published_as_it_is_crawled() -> None:
    sim = Simulator(
        customers=CUSTOMERS,
        seats_per_customer=3,
        seed=4,
        shape="live",
        latency_ms={"domains": 30, "seats": 40, "applications": 20},
    )
    with ServerThread(sim.app()) as vendor:
        # One crawl reads a fraction of the fleet: 0.4 s at 2 customers per 60 ms.
        settings = config(vendor.url, max_concurrency=2, refresh_timeout_seconds=0.4)
        with ServerThread(build_app(settings)) as exporter:
            first = scrape(exporter)
            seen = published(first)
            assert 0 < len(seen) < CUSTOMERS, "published before the crawl ended"
            assert value(first, "saas_backup_up", source="datto") == 1
            progress = value(first, "saas_backup_crawl_progress", source="datto")
            assert 0 < progress < 1
            body = scrape_until(exporter, lambda b: len(published(b)) == CUSTOMERS)
            ages = series(body, "saas_backup_customer_data_age_seconds", source="datto")
            assert {labels["customer_id"] for labels, _ in ages} == published(body)
            assert all(age >= 0 for _, age in ages)
            assert value(body, "saas_backup_up", source="datto") == 1
            # The default TTLs: seats and applications hourly, the customer list every 15 min.
            planned = value(body, "saas_backup_api_budget_planned_calls_per_hour", source="datto")
            assert planned == 2 * CUSTOMERS + 4
            # The simulator reports a budget the way Datto does.
            assert value(body, "saas_backup_api_budget_remaining_calls", source="datto") > 0
            allowed = value(body, "saas_backup_api_budget_allowed_calls_per_hour", source="datto")
            cover = value(body, "saas_backup_api_budget_fleet_cover_seconds", source="datto")
            assert cover == pytest.approx((2 * CUSTOMERS + 1) / allowed * 3600)
    calls = dict(sim.calls)
    assert calls["datto.seats"] == CUSTOMERS, "a cut crawl's reads are kept, never repeated"
    assert calls["datto.applications"] == CUSTOMERS
    assert calls["datto.domains"] == 1, "the customer list is cached for its own TTL"


def test_counters_move_while_a_crawl_runs() -> None:
    sim = Simulator(customers=8, seats_per_customer=2, seed=4, shape="live")
    sim.set_latency({"seats": 150})
    with ServerThread(sim.app()) as vendor:
        settings = config(vendor.url, max_concurrency=1, refresh_timeout_seconds=60)
        with ServerThread(build_app(settings)) as exporter:
            first = scrape(exporter, timeout=0.3)
            assert value(first, "saas_backup_crawl_running", source="datto") == 1
            requests = sum(
                v for _, v in series(first, "saas_backup_api_requests_total", source="datto")
            )
            assert requests >= 1, "the customer list's call is counted mid-crawl"
            later = scrape_until(
                exporter,
                lambda b: (
                    sum(v for _, v in series(b, "saas_backup_api_requests_total", source="datto"))
                    > requests
                ),
            )
            assert value(later, "saas_backup_crawl_running", source="datto") == 1


def test_a_hanging_vendor_is_down_while_the_crawl_still_runs() -> None:
    sim = Simulator(customers=4, seats_per_customer=2, seed=4, shape="live")
    with ServerThread(sim.app()) as vendor:
        settings = config(
            vendor.url,
            {"ttl_seconds": 0.2},
            refresh_timeout_seconds=120,
            stall_seconds=0.5,
            timeout_seconds=60,
        )
        with ServerThread(build_app(settings)) as exporter:
            body = scrape(exporter, timeout=5)
            assert value(body, "saas_backup_up", source="datto") == 1
            assert len(published(body)) == 4
            sim.set_faults([parse_fault("hang@seats?delay_ms=60000")])
            body = scrape_until(exporter, lambda b: value(b, "saas_backup_up", source="datto") == 0)
            assert value(body, "saas_backup_crawl_running", source="datto") == 1
            assert len(published(body)) == 4, "the last good data stays beside up=0"
            sim.set_faults([])


def test_a_restart_with_a_state_file_serves_every_customer_in_its_first_scrape(
    tmp_path: Path,
) -> None:
    sim = Simulator(customers=10, seats_per_customer=3, seed=4, shape="live")
    state_file = tmp_path / "state.db"
    with ServerThread(sim.app()) as vendor:
        settings = config(vendor.url, {"state_file": str(state_file)})
        with ServerThread(build_app(settings)) as exporter:
            before = scrape(exporter, timeout=5)
        assert len(published(before)) == 10
        calls = dict(sim.calls)

        # The vendor hangs from now on: whatever the restarted exporter serves comes from the
        # state file.
        sim.set_faults([parse_fault("hang@*?delay_ms=60000")])
        with ServerThread(build_app(settings)) as exporter:
            started = time.monotonic()
            after = scrape(exporter, timeout=0.5)
            assert time.monotonic() - started < 5
            ready = httpx.get(exporter.url + "/-/ready", timeout=5)
        sim.set_faults([])
    assert published(after) == published(before)
    assert value(after, "saas_backup_up", source="datto") == 1, "up keeps its last value"
    for name in ("saas_backup_seats", "saas_backup_application_last_backup_status"):
        assert series(after, name) == series(before, name)
    ages = dict(
        (labels["customer_id"], age)
        for labels, age in series(after, "saas_backup_customer_data_age_seconds")
    )
    previous = dict(
        (labels["customer_id"], age)
        for labels, age in series(before, "saas_backup_customer_data_age_seconds")
    )
    assert all(ages[c] > previous[c] for c in ages), "true ages, not reset by the restart"
    assert ready.status_code == 200, "restored counts as refreshed"
    assert {k: v for k, v in sim.calls.items() if k != "datto.domains"} == {
        k: v for k, v in calls.items() if k != "datto.domains"
    }, "no customer read again: none was due"


def test_a_corrupt_state_file_is_set_aside_and_the_exporter_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = Simulator(customers=3, seats_per_customer=2, seed=4, shape="live")
    state_file = tmp_path / "state.db"
    state_file.write_bytes(b"this is not a database" * 100)
    with ServerThread(sim.app()) as vendor:
        settings = config(vendor.url, {"state_file": str(state_file)})
        with caplog.at_level(logging.WARNING), ServerThread(build_app(settings)) as exporter:
            body = scrape(exporter, timeout=5)
    assert len(published(body)) == 3
    assert any(str(state_file) in r.getMessage() for r in caplog.records)
    assert list(tmp_path.glob("state.db.corrupt-*")), "the bad file is kept, not deleted"


def test_unchanged_data_read_again_is_not_rendered_again() -> None:
    """Every vendor, restore jobs finished long ago included: with the simulator's clock
    stopped its answers do not change, so reads on a short TTL render nothing new."""
    frozen = time.time()
    sim = Simulator(customers=4, seats_per_customer=2, seed=4, shape="live", clock=lambda: frozen)
    with ServerThread(sim.app()) as vendor:
        app = build_app(demo_config(vendor.url, sim, ttl_seconds=0.2))
        with ServerThread(app) as exporter:
            scrape(exporter, timeout=10)
            renders = app.state.exposition.renders
            calls = sum(sim.calls.values())
            for _ in range(5):
                before = sum(sim.calls.values())
                scrape_until(exporter, lambda _, n=before: sum(sim.calls.values()) > n)
            body = scrape(exporter)
    assert sum(sim.calls.values()) > calls, "the vendors were read again"
    assert app.state.exposition.renders == renders, "and nothing was rendered again"
    assert all(v == 1 for _, v in series(body, "saas_backup_up"))

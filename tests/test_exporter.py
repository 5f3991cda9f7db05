"""The whole pipeline over real sockets: simulator -> Datto source -> cache -> /metrics."""

from __future__ import annotations

import concurrent.futures
import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from exporter.app import build_app
from exporter.config import Config, build_config
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from tests.conftest import (
    ServerThread,
    datto_source,
    promtool_check_metrics,
    series,
    value,
)

CUSTOMERS = 6
SEATS = 12


@dataclass
class Stack:
    sim: Simulator
    sim_server: ServerThread
    exporter: ServerThread
    config: Config
    app: Any

    def scrape(self, timeout_header: float | None = None, **headers: str) -> httpx.Response:
        if timeout_header is not None:
            headers["X-Prometheus-Scrape-Timeout-Seconds"] = str(timeout_header)
        return httpx.get(f"{self.exporter.url}/metrics", headers=headers, timeout=30)


def start_stack(
    sim: Simulator, *, cache: dict[str, Any] | None = None, **source: Any
) -> tuple[ServerThread, ServerThread, Config, Any]:
    sim_server = ServerThread(sim.app()).start()
    config = build_config(
        {
            "cache": {"warm_up": False, **(cache or {})},
            "sources": [datto_source(sim_server.url, **source)],
        }
    )
    app = build_app(config)
    exporter = ServerThread(app, limit_concurrency=200).start()
    return sim_server, exporter, config, app


@pytest.fixture
def stack_factory() -> Iterator[Any]:
    started: list[Stack] = []

    def make(sim: Simulator | None = None, **kwargs: Any) -> Stack:
        sim = sim or Simulator(customers=CUSTOMERS, seats_per_customer=SEATS, seed=7)
        sim_server, exporter, config, app = start_stack(sim, **kwargs)
        stack = Stack(sim, sim_server, exporter, config, app)
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.exporter.stop()
        stack.sim_server.stop()


def test_metrics_describe_the_fleet(stack_factory: Any) -> None:
    stack = stack_factory()
    response = stack.scrape(10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    body = response.text
    fleet = stack.sim.fleet
    assert value(body, "saas_backup_up", source="datto") == 1
    assert value(body, "saas_backup_source_info", source="datto", provider="datto") == 1
    customers = series(body, "saas_backup_customer_info", source="datto")
    assert len(customers) == len(fleet.customers)
    assert {c["customer_name"] for c, _ in customers} == {c.name for c in fleet.customers}
    assert any(c["status"] == "inactive" for c, _ in customers)
    assert all(v == 1 for _, v in series(body, "saas_backup_customer_up"))
    total_seats = sum(v for _, v in series(body, "saas_backup_seats"))
    assert total_seats == sum(len(c.seats) for c in fleet.customers)
    states = {labels["license_state"] for labels, _ in series(body, "saas_backup_seats")}
    assert {"licensed", "paused", "unlicensed", "archived"} <= states
    assert series(body, "saas_backup_seat_last_backup_timestamp_seconds")
    assert series(body, "saas_backup_application_last_backup_timestamp_seconds")
    assert series(body, "saas_backup_application_last_backup_status", status="success")
    assert series(body, "saas_backup_application_services", state="perfect")
    assert value(body, "saas_backup_api_requests_total", endpoint="domains", code="200") == 1
    assert value(body, "saas_backup_api_limit_remaining", source="datto") > 0
    assert value(body, "saas_backup_api_limit_reset_timestamp_seconds") > time.time()
    assert value(body, "saas_backup_api_limit_cost_total", endpoint="domains") >= 1
    assert 0 <= value(body, "saas_backup_cache_age_seconds", source="datto") < 30
    assert value(body, "saas_backup_last_refresh_success_timestamp_seconds") <= time.time()
    assert value(body, "saas_backup_exporter_build_info") == 1


def test_single_flight_and_ttl(stack_factory: Any) -> None:
    stack = stack_factory()
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: stack.scrape(20), range(50)))
    assert all(r.status_code == 200 for r in responses)
    assert all("saas_backup_customer_info{" in r.text for r in responses)
    calls = dict(stack.sim.calls)
    assert calls == {
        "datto.domains": 1,
        "datto.seats": CUSTOMERS,
        "datto.applications": CUSTOMERS,
    }, "exactly one call per endpoint (and customer) on a cold cache"
    renders = stack.app.state.exposition.renders
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        again = list(pool.map(lambda _: stack.scrape(20), range(50)))
    assert all(r.status_code == 200 for r in again)
    assert dict(stack.sim.calls) == calls, "no vendor call within the TTL"
    assert stack.app.state.exposition.renders == renders, "rendered once per snapshot change"


def test_a_hanging_vendor_does_not_hang_the_scrape(stack_factory: Any) -> None:
    stack = stack_factory(cache={"ttl_seconds": 0.5}, refresh_timeout_seconds=1)
    first = stack.scrape(10)
    assert value(first.text, "saas_backup_up", source="datto") == 1
    stack.sim.set_faults([parse_fault("hang@*?delay_ms=60000")])
    time.sleep(0.6)

    started = time.monotonic()
    response = stack.scrape(2.5)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 2.5
    body = response.text
    assert value(body, "saas_backup_up", source="datto") == 0
    assert len(series(body, "saas_backup_customer_info")) == CUSTOMERS, "previous data kept"
    assert value(body, "saas_backup_cache_age_seconds") >= 0.5

    # A scrape whose deadline is shorter than the refresh still answers on time.
    time.sleep(0.6)
    started = time.monotonic()
    quick = stack.scrape(0.9)
    assert quick.status_code == 200
    assert time.monotonic() - started < 0.9
    assert len(series(quick.text, "saas_backup_customer_info")) == CUSTOMERS


def test_retry_after_is_honoured(stack_factory: Any) -> None:
    sim = Simulator(customers=2, seats_per_customer=4, seed=3)
    sim.set_faults([parse_fault("429@domains?retry_after=2&times=1")])
    stack = stack_factory(sim)
    body = stack.scrape(10).text
    arrivals = [r.time for r in sim.requests if r.path == "/v1/saas/domains"]
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 2.0
    assert value(body, "saas_backup_up") == 1
    assert value(body, "saas_backup_api_requests_total", endpoint="domains", code="429") == 1


def test_server_errors_are_retried(stack_factory: Any) -> None:
    sim = Simulator(customers=2, seats_per_customer=4, seed=3)
    sim.set_faults([parse_fault("500@domains?times=1")])
    stack = stack_factory(sim)
    body = stack.scrape(10).text
    assert value(body, "saas_backup_up") == 1
    assert value(body, "saas_backup_api_requests_total", endpoint="domains", code="500") == 1
    assert value(body, "saas_backup_api_requests_total", endpoint="domains", code="200") == 1


def test_one_customer_failing_does_not_fail_the_source(stack_factory: Any) -> None:
    sim = Simulator(customers=CUSTOMERS, seats_per_customer=SEATS, seed=7)
    broken = str(sim.fleet.customers[1].id)
    sim.set_faults([parse_fault(f"504@seats?customer={broken}")])
    stack = stack_factory(sim)
    body = stack.scrape(10).text
    assert value(body, "saas_backup_up") == 1
    assert value(body, "saas_backup_customer_up", customer_id=broken) == 0
    others = [
        v
        for labels, v in series(body, "saas_backup_customer_up")
        if labels["customer_id"] != broken
    ]
    assert others == [1] * (CUSTOMERS - 1)
    # /domains still describes the broken customer.
    assert series(body, "saas_backup_customer_info", customer_id=broken)
    assert value(body, "saas_backup_customer_seats_used", customer_id=broken) >= 0
    assert not series(body, "saas_backup_seats", customer_id=broken)
    assert series(body, "saas_backup_application_last_backup_status", customer_id=broken)


def test_malformed_json_is_a_parse_error_for_that_customer(stack_factory: Any) -> None:
    sim = Simulator(customers=3, seats_per_customer=5, seed=5)
    broken = str(sim.fleet.customers[0].id)
    sim.set_faults([parse_fault(f"malformed@seats?customer={broken}")])
    stack = stack_factory(sim)
    body = stack.scrape(10).text
    assert value(body, "saas_backup_up") == 1
    assert value(body, "saas_backup_customer_up", customer_id=broken) == 0
    assert value(body, "saas_backup_parse_errors_total") >= 1


def test_bad_keys_mark_the_source_down(stack_factory: Any) -> None:
    stack = stack_factory(private_key="wrong-key-123")
    body = stack.scrape(10).text
    assert value(body, "saas_backup_up") == 0
    assert value(body, "saas_backup_api_requests_total", endpoint="domains", code="401") == 1
    assert not series(body, "saas_backup_customer_info")
    page = httpx.get(stack.exporter.url + "/", timeout=10).text
    assert "HTTP 401" in page


def test_health_readiness_and_landing_page(stack_factory: Any) -> None:
    stack = stack_factory()
    url = stack.exporter.url
    assert httpx.get(url + "/-/healthy", timeout=10).status_code == 200
    not_ready = httpx.get(url + "/-/ready", timeout=10)
    assert not_ready.status_code == 503
    assert "datto" in not_ready.text
    assert stack.sim.calls.total() == 0, "building and starting the app made no vendor call"
    stack.scrape(10)
    assert httpx.get(url + "/-/ready", timeout=10).status_code == 200
    page = httpx.get(url + "/", timeout=10)
    assert page.status_code == 200
    assert "<td>datto</td>" in page.text
    assert "<td>up</td>" in page.text
    assert httpx.get(url + "/nope", timeout=10).status_code == 404
    assert httpx.post(url + "/metrics", timeout=10).status_code == 405
    # A nonsense scrape-timeout header falls back to the default deadline.
    assert stack.scrape(None, **{"X-Prometheus-Scrape-Timeout-Seconds": "soon"}).status_code == 200


def test_warm_up_makes_the_exporter_ready_without_a_scrape() -> None:
    sim = Simulator(customers=2, seats_per_customer=3, seed=2)
    with ServerThread(sim.app()) as sim_server:
        config = build_config({"sources": [datto_source(sim_server.url)]})
        with ServerThread(build_app(config)) as exporter:
            deadline = time.monotonic() + 10
            while httpx.get(exporter.url + "/-/ready", timeout=5).status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert sim.calls["datto.domains"] == 1


def test_gzip_and_openmetrics(stack_factory: Any) -> None:
    stack = stack_factory()
    plain = stack.scrape(10)
    zipped = stack.scrape(10, **{"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    # httpx decodes gzip itself; check the raw bytes too.
    with httpx.stream(
        "GET", stack.exporter.url + "/metrics", headers={"Accept-Encoding": "gzip"}
    ) as r:
        compressed = b"".join(r.iter_raw())
    unzipped = gzip.decompress(compressed).decode()
    # The ages move with the clock between the two scrapes; everything else is the same.
    strip = [line for line in unzipped.splitlines() if "age_seconds{" not in line]
    assert strip == [line for line in plain.text.splitlines() if "age_seconds{" not in line]

    om = stack.scrape(10, Accept="application/openmetrics-text; version=1.0.0")
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    assert om.text.count("# EOF") == 1
    assert "saas_backup_cache_age_seconds{" in om.text


def test_promtool_accepts_the_exposition(stack_factory: Any) -> None:
    stack = stack_factory(Simulator(customers=12, seats_per_customer=25, seed=1))
    promtool_check_metrics(stack.scrape(10).text)

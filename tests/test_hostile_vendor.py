"""The simulator as a hostile vendor, over real sockets: bodies without end, too large, trickling
or nested past reason; answers of the wrong shape, with ids twice, implausible times, counts that
are not counts, and text that is not valid Unicode; pages without end. Each call stays bounded,
each problem is counted, and no customer's bad data fails the scrape."""

from __future__ import annotations

import asyncio
import gzip
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from exporter import vendors
from exporter.config import ConfigError, build_config
from exporter.http import BearerAuth, Token, TokenCache, VendorClient, VendorError
from exporter.settings import MIB, RetryConfig
from exporter.simulator.app import Simulator
from exporter.simulator.faults import Fault, parse_fault
from exporter.simulator.world import Shape
from exporter.vendors.datto.simulator import iso
from tests.conftest import (
    ServerThread,
    backupify_source,
    cloudally_source,
    datto_source,
    exporter_for,
    scrape,
    series,
    value,
)

DAY = 86400.0
Builder = Callable[[str], dict[str, Any]]


@contextmanager
def exporter_against(sim: Simulator, *sources: Builder) -> Iterator[ServerThread]:
    with (
        ServerThread(sim.app()) as vendor,
        ServerThread(exporter_for(*(source(vendor.url) for source in sources))) as exporter,
    ):
        yield exporter


def scrape_once(sim: Simulator, *sources: Builder) -> tuple[str, float]:
    """One scrape of an exporter reading the simulator, and how long it took."""
    with exporter_against(sim, *sources) as exporter:
        started = time.monotonic()
        body = scrape(exporter)
        return body, time.monotonic() - started


def datto_sim(shape: Shape = "mixed", customers: int = 3, seats: int = 4) -> Simulator:
    return Simulator(customers=customers, seats_per_customer=seats, seed=5, shape=shape)


def customer_ids(sim: Simulator) -> list[str]:
    return [str(c.id) for c in sim.fleet.customers]


def requests(body: str, source: str, endpoint: str, code: str) -> float:
    found = series(body, "saas_backup_api_requests_total", source=source, endpoint=endpoint)
    return sum(v for labels, v in found if labels["code"] == code)


def customers_up(body: str, source: str = "datto") -> dict[str, float]:
    found = series(body, "saas_backup_customer_up", source=source)
    return {labels["customer_id"]: v for labels, v in found}


def sample_keys(body: str) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    """Every sample of the exposition, duplicates included."""
    return [
        (s.name, frozenset(s.labels.items()))
        for family in text_string_to_metric_families(body)
        for s in family.samples
    ]


def assert_sane(body: str) -> None:
    """No series twice, every value finite and not negative, every time plausible."""
    keys = sample_keys(body)
    assert len(keys) == len(set(keys)), "a series is exported twice"
    latest = time.time() + DAY
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            assert math.isfinite(s.value), (s.name, s.labels, s.value)
            assert s.value >= 0, (s.name, s.labels, s.value)
            if s.name.endswith("_timestamp_seconds"):
                assert 946684800 <= s.value <= latest, (s.name, s.labels, s.value)


def test_an_endless_body_is_cut_at_the_cap_and_fails_that_customer_only() -> None:
    sim = datto_sim()
    bad, *good = customer_ids(sim)
    fault = parse_fault(f"endless@seats?customer={bad}")
    sim.set_faults([fault])
    limit = {"seats": MIB}
    body, took = scrape_once(sim, lambda url: datto_source(url, max_body_bytes_by_endpoint=limit))
    assert value(body, "saas_backup_up", source="datto") == 1
    assert customers_up(body) == {bad: 0, **dict.fromkeys(good, 1)}
    # Counted, and not retried: the vendor would send the same again.
    assert requests(body, "datto", "seats", "too_large") == 1
    assert requests(body, "datto", "seats", "200") == len(good)
    # What the exporter let in is the cap; the rest never left the vendor's socket buffers.
    assert fault.sent < 32 * MIB
    assert took < 10
    assert_sane(body)


def test_a_body_declared_over_the_default_cap_is_refused_before_it_is_read() -> None:
    sim = datto_sim()
    bad = customer_ids(sim)[1]
    fault = parse_fault(f"huge@seats?customer={bad}&bytes={65 * MIB}")
    sim.set_faults([fault])
    body, _ = scrape_once(sim, datto_source)
    assert requests(body, "datto", "seats", "too_large") == 1
    assert customers_up(body)[bad] == 0
    assert fault.sent < 16 * MIB


def _client(url: str, **options: Any) -> VendorClient:
    retry = RetryConfig(attempts=1, initial_backoff_seconds=0, jitter_seconds=0)
    return VendorClient(base_url=url, retry=retry, timeout=5, connect_timeout=5, **options)


async def _endless(_: Request) -> Response:
    async def body() -> Any:
        while True:
            yield b" " * 65536
            await asyncio.sleep(0)

    return StreamingResponse(body(), 401, media_type="application/json")


async def _bomb(_: Request) -> Response:
    inflated = b"[" + b" " * (8 * MIB) + b"]"
    return Response(gzip.compress(inflated), 200, {"Content-Encoding": "gzip"}, "application/json")


def test_the_cap_counts_inflated_bytes_and_the_bodies_httpx_reads_itself() -> None:
    """A gzip body of a few KiB that inflates past the cap; a 401 without end, whose body httpx
    reads on its own when the auth flow retries with a new token."""
    app = Starlette(routes=[Route("/bomb", _bomb), Route("/refused", _endless)])

    async def token(_: Token | None) -> Token:
        return Token("t", time.monotonic() + 3600)

    async def main(url: str) -> tuple[list[str], dict[tuple[str, str], int]]:
        client = _client(url, max_body_bytes=MIB, auth=BearerAuth(TokenCache(token)))
        errors = []
        for endpoint, path in (("bomb", "/bomb"), ("refused", "/refused")):
            with pytest.raises(VendorError) as info:
                await client.get_json(endpoint, path)
            errors.append(str(info.value))
        await client.aclose()
        return errors, dict(client.stats.requests)

    with ServerThread(app) as server:
        started = time.monotonic()
        errors, counted = asyncio.run(main(server.url))
    assert errors == [
        f"GET /bomb: response body over {MIB} bytes",
        f"GET /refused: response body over {MIB} bytes",
    ]
    assert counted == {("bomb", "too_large"): 1, ("refused", "too_large"): 1}
    assert time.monotonic() - started < 5


def test_a_trickling_vendor_is_cut_off_at_the_call_deadline() -> None:
    """A byte every 50 ms never trips the per-read timeout; the deadline ends the call."""
    sim = datto_sim()
    bad, *good = customer_ids(sim)
    sim.set_faults([parse_fault(f"trickle@seats?customer={bad}&delay_ms=50")])
    body, took = scrape_once(
        sim, lambda url: datto_source(url, timeout_seconds=5, request_deadline_seconds=1)
    )
    # Both attempts, each cut off after a second.
    assert requests(body, "datto", "seats", "timeout") == 2
    assert customers_up(body) == {bad: 0, **dict.fromkeys(good, 1)}
    assert took < 8


def test_json_nested_past_reason_is_a_counted_parse_error() -> None:
    sim = datto_sim()
    bad, *good = customer_ids(sim)
    sim.set_faults([parse_fault(f"deep_json@seats?customer={bad}")])
    body, _ = scrape_once(sim, datto_source)
    assert value(body, "saas_backup_parse_errors_total", source="datto") == 1
    assert customers_up(body) == {bad: 0, **dict.fromkeys(good, 1)}


SOURCES: tuple[Builder, ...] = (datto_source, backupify_source, cloudally_source)


def test_answers_of_the_wrong_shape_are_counted() -> None:
    sim = datto_sim()
    sim.set_faults(
        [
            parse_fault(f"rewrite@{route}?edit=wrong_shape")
            for route in ("seats", "customer_instances", "backups", "partner_status")
        ]
    )
    body, _ = scrape_once(sim, *SOURCES)
    datto_customers = len(sim.fleet.customers)
    assert value(body, "saas_backup_parse_errors_total", source="datto") == datto_customers
    for source in ("backupify", "cloudally"):
        assert value(body, "saas_backup_parse_errors_total", source=source) >= 1
    assert_sane(body)


def test_ids_listed_twice_make_one_series() -> None:
    sim = datto_sim()
    sim.set_faults(
        [
            parse_fault(f"rewrite@{route}?edit=duplicate")
            for route in ("domains", "seats", "customer_instances", "partner_tasks")
        ]
    )
    body, _ = scrape_once(sim, *SOURCES)
    assert_sane(body)
    seats = sum(len(c.seats) for c in sim.fleet.customers)
    assert len(series(body, "saas_backup_seat_info", source="datto")) == seats
    assert sum(v for _, v in series(body, "saas_backup_seats", source="datto")) == seats
    assert series(body, "saas_backup_backup_instance_info", source="backupify")
    assert series(body, "saas_backup_application_last_backup_status", source="cloudally")


BAD_TIMES: tuple[Any, ...] = (
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    1e300,
    # Arabic-Indic digits: a time in 2023 to float(), not to any API.
    "\u0661\u0667" + "\u0660" * 8,
)


def test_implausible_times_and_counts_are_dropped_and_counted() -> None:
    # Mixed: the first customer's seats carry the spec's lastBackup, the customer list the
    # live counts.
    sim = datto_sim(seats=6)
    first = customer_ids(sim)[0]
    spoiled: list[str] = []

    def bad_times(body: Any) -> Any:
        seats = body["seats"]
        for seat, bad in zip(seats, (*BAD_TIMES, iso(time.time() + 3 * DAY)), strict=False):
            seat["lastBackup"] = bad
            spoiled.append(seat["remoteId"])
        return body

    def bad_counts(body: Any) -> Any:
        for domain, bad in zip(body, (math.nan, -5, math.inf), strict=True):
            domain["seatsUsed"] = bad
            domain["backupStats"]["activeServicesCount"] = -1
            domain["backupStats"]["backupPercentage"] = 250.0
        return body

    def ancient_and_future(body: Any) -> Any:
        for number, task in enumerate(body["data"]):
            dates = task.get("lastBackupDates") or {}
            for key in dates:
                dates[key] = 99991231235959 if number % 2 else "00010101000000"
        return body

    sim.set_faults(
        [
            Fault("rewrite", "seats", customer=first, edit=bad_times),
            Fault("rewrite", "domains", edit=bad_counts),
            Fault("rewrite", "partner_tasks", edit=ancient_and_future),
        ]
    )
    body, _ = scrape_once(sim, datto_source, cloudally_source)
    assert_sane(body)
    assert len(spoiled) == 5
    backed_up = {
        labels["seat_id"]
        for labels, _ in series(body, "saas_backup_seat_last_backup_timestamp_seconds")
    }
    assert backed_up, "the other seats keep their times"
    assert not backed_up & set(spoiled)
    for metric in (
        "saas_backup_customer_seats_used",
        "saas_backup_customer_backup_ratio",
        "saas_backup_customer_services",
    ):
        assert not [s for s in series(body, metric) if s[0].get("state") != "backed_up_recently"]
    # 5 times, 3 seat counts, 3 service counts, 3 percentages.
    assert value(body, "saas_backup_parse_errors_total", source="datto") == 14
    assert value(body, "saas_backup_parse_errors_total", source="cloudally") >= 1


def test_text_that_is_not_valid_unicode_fails_no_scrape() -> None:
    """A lone surrogate in one customer's name made /metrics answer 500 for every source."""
    sim = datto_sim()
    first = customer_ids(sim)[0]

    def bad_name(body: Any) -> Any:
        domains = body if isinstance(body, list) else body["domains"]
        domains[0]["saasCustomerName"] = "Bad \ud800 name"
        return body

    sim.set_faults(
        [
            Fault("rewrite", "domains", edit=bad_name),
            # Every string of every seat: ids and names alike.
            parse_fault("rewrite@seats?edit=surrogate"),
            parse_fault("rewrite@partner_tasks?edit=surrogate"),
        ]
    )
    body, _ = scrape_once(sim, datto_source, cloudally_source)
    assert value(body, "saas_backup_up", source="datto") == 1
    assert value(body, "saas_backup_up", source="cloudally") == 1
    [(labels, _)] = series(body, "saas_backup_customer_info", customer_id=first)
    assert labels["customer_name"] == "Bad \ufffd name"
    seat_ids = [labels["seat_id"] for labels, _ in series(body, "saas_backup_seat_info")]
    assert seat_ids
    assert all(s.endswith("\ufffd") for s in seat_ids)
    assert_sane(body)


def test_the_page_count_is_capped_by_the_config_whatever_total_pages_says() -> None:
    sim = datto_sim(shape="live", customers=2)

    def endless_pages(body: Any) -> Any:
        for envelope in body if isinstance(body, list) else [body]:
            envelope["pagination"]["totalPages"] = 10**9
            envelope["items"] = envelope["items"] or [{"suites": []}]
        return body

    sim.set_faults([Fault("rewrite", "applications", edit=endless_pages)])
    body, _ = scrape_once(sim, lambda url: datto_source(url, applications_max_pages=3))
    assert sim.calls["datto.applications"] == 2 * 3
    assert value(body, "saas_backup_up", source="datto") == 1


# Each the name of one customer; a lone surrogate comes back as U+FFFD, all else as it went.
NAMES = (
    'quote " backslash \\ newline \n tab \t return \r',
    "nul \x00 line separator \u2028 next line \x85",
    '}{customer_name="forged"} # HELP',
    "😀 עברית 中文",
    "\\n is not a newline",
    "",
    "lone \udc80 surrogate",
)


def test_any_vendor_string_comes_back_unchanged_through_a_prometheus_parser() -> None:
    sim = datto_sim(customers=len(NAMES), seats=1)

    def named(body: Any) -> Any:
        domains = body if isinstance(body, list) else body["domains"]
        for domain, name in zip(domains, NAMES, strict=True):
            domain["saasCustomerName"] = name
            domain["organizationName"] = domain["domain"] = None
        return body

    sim.set_faults([Fault("rewrite", "domains", edit=named)])
    expected = {
        cid: name.replace("\udc80", "\ufffd")
        for cid, name in zip(customer_ids(sim), NAMES, strict=True)
    }
    with exporter_against(sim, datto_source) as exporter:
        text = scrape(exporter)
        openmetrics = httpx.get(
            exporter.url + "/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            timeout=30,
        )
    assert openmetrics.status_code == 200
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    for families in (
        text_string_to_metric_families(text),
        openmetrics_families(openmetrics.text),  # type: ignore[no-untyped-call]
    ):
        names = {
            s.labels["customer_id"]: s.labels["customer_name"]
            for family in families
            if family.name == "saas_backup_customer_info"
            for s in family.samples
        }
        # An empty name falls back to the customer id, as it always has.
        assert names == {cid: name or cid for cid, name in expected.items()}


def test_the_caps_are_settings_with_generous_defaults() -> None:
    config = build_config({"sources": [datto_source("http://x")]})
    source = config.sources[0]
    assert source.max_body_bytes == 64 * MIB
    # Each step's timeout (connect, each read) is not the call's: the deadline bounds the sum.
    assert source.deadline_seconds == source.connect_timeout_seconds + source.timeout_seconds
    for vendor in vendors.all():
        assert set(vendor.endpoints) <= vendor.settings.ENDPOINTS, vendor.name
    with pytest.raises(ConfigError, match="unknown endpoint seatz"):
        build_config(
            {"sources": [datto_source("http://x", max_body_bytes_by_endpoint={"seatz": 4096})]}
        )

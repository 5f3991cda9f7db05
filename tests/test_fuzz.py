"""Property-based tests of every vendor's parsers: the simulator answers in the vendor's real
shapes (spec, live and mixed), and each answer is spoiled on its way to the source: values
swapped for hostile ones (lone surrogates, year 1 and 9999, other scripts' digits, NaN, huge and
negative numbers, wrong types), parts deleted, duplicated, moved or nested past reason. A crawl
must end in records or counted problems, never an exception out of the source; the records must
render to an exposition a Prometheus parser reads back, every series once, every value sane.

And the label round trip: any vendor string goes out through the exposition, in both formats,
and comes back unchanged (a lone surrogate as U+FFFD) through a Prometheus text parser.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter import vendors
from exporter.config import build_config
from exporter.http import VendorError
from exporter.model import Snapshot, valid_text
from exporter.parsing import EARLIEST_TIME, FUTURE_SLACK_SECONDS, Problems
from exporter.render import Rows, encode, part_rows
from exporter.simulator.app import Simulator
from exporter.simulator.world import Shape
from exporter.source import Fetched, FetchError, Part, Source
from exporter.vendors.datto.parse import DomainRecord, parse_seats, to_customer
from tests.conftest import backupify_source, cloudally_source, datto_source

NOW = float(int(time.time()))
SHAPES: tuple[Shape, ...] = ("spec", "live", "mixed")
BASE_URL = "http://vendor.invalid"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    # Nothing written into the working tree; a failure prints how to reproduce it.
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
TEXT = st.text(st.one_of(st.characters(), SURROGATE), max_size=12)
SPECIAL = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "\u0661\u0667" + "\u0660" * 8,
        "20230330202812",
        "00010101000000",
        "99991231235959",
        "OVER_10_DAYS_AGO",
        "OVER_9999_DAYS_AGO",
        "Between0dAnd1d",
        "NaN",
        "-1",
        "1e300",
        "",
        "\ud800",
        "a\udc80b",
        10**400,
        2**63,
        -(2**63),
        1e300,
        -1,
        -0.0,
        math.nan,
        math.inf,
        -math.inf,
    ]
)
SCALAR = st.one_of(SPECIAL, st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
OPS = ("replace", "replace", "delete", "duplicate", "transplant", "nest")

Path = tuple[Any, ...]


def _paths(node: Any, prefix: Path = ()) -> list[Path]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _get(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


def _mutate(body: Any, path: Path, op: str, value: Any) -> Any:
    """The body with one change at ``path``: ``value`` put there (replace, transplant), the
    node deleted, duplicated, or nested in more arrays than any answer has."""
    if op == "nest":
        value = _get(body, path)
        for _ in range(80):
            value = [value]
    if not path:
        return {"delete": None, "duplicate": [body, body]}.get(op, value)
    parent = _get(body, path[:-1])
    key = path[-1]
    if op == "delete":
        del parent[key]
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, parent[key])
    elif op == "duplicate":
        parent[key] = [parent[key], parent[key]]
    else:
        parent[key] = value
    return body


class Spoiling(httpx.AsyncBaseTransport):
    """The simulator in-process, its JSON answers spoiled by the test's draws on their way."""

    def __init__(self, sim: Simulator, data: st.DataObject, spare: Collection[str]) -> None:
        self._inner = httpx.ASGITransport(app=sim.app())
        self._data = data
        # Token endpoints: spoiling them tests nothing but the login.
        self._spare = spare

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        media = response.headers.get("content-type", "")
        if request.url.path in self._spare or not media.startswith("application/json"):
            return response
        body = json.loads(content)
        draw = self._data.draw
        for _ in range(draw(st.integers(0, 3), label="changes")):
            paths = _paths(body)
            path = draw(st.sampled_from(paths), label="path")
            op = draw(st.sampled_from(OPS), label="op")
            value = None
            if op == "replace":
                value = draw(VALUE, label="value")
            elif op == "transplant":
                # Another part of the same answer: a real shape where it does not belong.
                value = copy.deepcopy(_get(body, draw(st.sampled_from(paths), label="donor")))
            body = _mutate(body, path, op, value)
        spoiled = json.dumps(body, ensure_ascii=True, allow_nan=True).encode()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=spoiled)


class StrictStore:
    """No cache, and only a vendor failure becomes a FetchError: any other exception a parser
    raises comes out of the crawl and fails the test."""

    async def fetch(self, endpoint: str, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        try:
            value = await load()
        except VendorError as exc:
            raise FetchError(str(exc), None) from None
        return Fetched(value, NOW)

    def retain(self, endpoint: str, keys: Collection[str]) -> None:
        pass


LIVE_CLOUDALLY = {"auth_style": "headers", "email": "ops@example.com", "password": "pw"}
CONFIGS: dict[str, Callable[[str], dict[str, Any]]] = {
    "datto": lambda shape: datto_source(BASE_URL),
    "backupify": lambda shape: backupify_source(BASE_URL),
    "cloudally": lambda shape: cloudally_source(
        BASE_URL, **(LIVE_CLOUDALLY if shape == "live" else {})
    ),
}


def _source(vendor: str, shape: str, transport: httpx.AsyncBaseTransport) -> Source[Any]:
    section = {**CONFIGS[vendor](shape), "max_concurrency": 1}
    config = build_config({"cache": {"warm_up": False}, "sources": [section]})
    return vendors.get(vendor).build_source(
        config.sources[0], transport=transport, clock=lambda: NOW
    )


async def _crawl(source: Source[Any]) -> tuple[list[Part], list[str]]:
    """Every part a crawl reads, and every failure met."""
    store = StrictStore()
    try:
        listing = await source.listing(store)
    except FetchError as exc:
        return [], [f"customer list: {exc.reason}"]
    parts = [await source.read(store, cid, unit) for cid, unit in listing.customers.items()]
    return parts, [p.error for p in parts if p.error]


def _assert_renders(parts: list[Part]) -> None:
    """Every part renders; both formats parse back, every series once, every value sane."""
    rows = Rows()
    for part in parts:
        part_rows(rows, "fuzz", part, per_seat=True)
    families = [family for _, family in rows.families()]
    latest = NOW + FUTURE_SLACK_SECONDS
    for openmetrics, parse in (
        (False, text_string_to_metric_families),
        (True, openmetrics_families),
    ):
        text = encode(families, openmetrics=openmetrics).decode()
        keys = []
        for family in parse(text + ("# EOF\n" if openmetrics else "")):
            for s in family.samples:
                keys.append((s.name, frozenset(s.labels.items())))
                assert math.isfinite(s.value), s
                assert s.value >= 0, s
                if s.name.endswith("_timestamp_seconds"):
                    assert EARLIEST_TIME <= s.value <= latest, s
        assert len(keys) == len(set(keys)), "a series twice"


@pytest.mark.parametrize("vendor", ["datto", "backupify", "cloudally"])
@FUZZ
@given(shape=st.sampled_from(SHAPES), data=st.data())
def test_spoiled_answers_end_in_records_or_counted_problems(
    vendor: str, shape: Shape, data: st.DataObject
) -> None:
    sim = Simulator(
        customers=2,
        seats_per_customer=3,
        seed=7,
        shape=shape,
        budget_headers=False,
        clock=lambda: NOW,
    )
    spare = {r.path for part in sim.parts.values() for r in part.routes() if r.auth is None}
    source = _source(vendor, shape, Spoiling(sim, data, spare))

    async def main() -> tuple[list[Part], list[str]]:
        try:
            return await _crawl(source)
        finally:
            await source.aclose()

    parts, failures = asyncio.run(main())
    # A spoiled id the vendor then refuses (HTTP 404) is the vendor's answer, not a parse
    # problem; every other failure must have been counted.
    unexplained = [f for f in failures if "HTTP " not in f]
    event(f"failures: {bool(failures)}, all refusals: {bool(failures) and not unexplained}")
    event(f"problems counted: {source.stats.parse_errors > 0}")
    if unexplained:
        assert source.stats.parse_errors > 0, unexplained
    _assert_renders(parts)


@FUZZ
@given(name=TEXT.filter(bool), seat=TEXT)
def test_any_vendor_string_comes_back_unchanged_through_a_prometheus_parser(
    name: str, seat: str
) -> None:
    problems = Problems()
    record = DomainRecord.model_validate(
        {"saasCustomerId": "c1", "saasCustomerName": name}, context={"problems": problems}
    )
    customer = to_customer(record, problems)
    seats = parse_seats([{"remoteId": "s1", "displayName": seat or "s1"}], "c1", problems)
    part = Part("c1", Snapshot(customers=(customer,), seats=tuple(seats)), NOW, NOW)
    rows = Rows()
    part_rows(rows, "fuzz", part, per_seat=True)
    families = [family for _, family in rows.families()]
    for openmetrics, parse in (
        (False, text_string_to_metric_families),
        (True, openmetrics_families),
    ):
        text = encode(families, openmetrics=openmetrics).decode()
        labels = {
            (s.name, key): value
            for family in parse(text + ("# EOF\n" if openmetrics else ""))
            for s in family.samples
            for key, value in s.labels.items()
        }
        assert labels["saas_backup_customer_info", "customer_name"] == valid_text(name)
        assert labels["saas_backup_seat_info", "seat_name"] == valid_text(seat or "s1")
    assert problems.count == 0

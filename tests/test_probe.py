"""/probe?target=<source>: one source's series exactly as /metrics has them, with the same
deadline, cache and single flight, over real sockets against the simulator; unknown targets are
refused with the reason."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exporter.app import build_app
from exporter.config import build_config
from exporter.exposition import Exposition
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from tests.conftest import (
    ServerThread,
    backupify_source,
    cloudally_source,
    datto_source,
    promtool_check_metrics,
    samples,
    value,
)
from tests.test_render_cache import CONFIGS, states

SOURCES = ("datto", "backupify", "cloudally")
# Served with every answer, /metrics and /probe alike; they carry no source.
EXPORTER_LEVEL = {
    "saas_backup_exporter_build_info",
    "saas_backup_config_last_reload_successful",
    "saas_backup_config_last_reload_success_timestamp_seconds",
}
# Families whose values do not move with the clock between two scrapes of cached data.
STEADY = {
    "saas_backup_up",
    "saas_backup_seats",
    "saas_backup_customer_info",
    "saas_backup_customer_up",
    "saas_backup_source_info",
}
Key = tuple[str, frozenset[tuple[str, str]]]


class Exporter:
    def __init__(self, sim: Simulator, url: str, app: Any) -> None:
        self.sim = sim
        self.url = url
        self.app = app

    def get(
        self, path: str, timeout: float = 15, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent = {"X-Prometheus-Scrape-Timeout-Seconds": str(timeout), **(headers or {})}
        return httpx.get(self.url + path, headers=sent, timeout=30)

    def probe(
        self, target: str, timeout: float = 15, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.get(f"/probe?target={target}", timeout, headers)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    sim = Simulator(customers=4, seats_per_customer=5, seed=3, token_ttl=3600)
    with ServerThread(sim.app()) as sim_server:
        config = build_config(
            {
                "cache": {"ttl_seconds": 600, "warm_up": False},
                "sources": [
                    datto_source(sim_server.url),
                    backupify_source(sim_server.url),
                    cloudally_source(sim_server.url),
                ],
            }
        )
        app = build_app(config)
        with ServerThread(app) as server:
            yield Exporter(sim, server.url, app)


def by_source(body: str) -> dict[str | None, dict[Key, float]]:
    out: dict[str | None, dict[Key, float]] = {}
    for key, number in samples(body).items():
        source = dict(key[1]).get("source")
        out.setdefault(source, {})[key] = number
    return out


def test_a_probe_serves_one_source_as_metrics_does(exporter: Exporter) -> None:
    whole = exporter.get("/metrics")
    assert whole.status_code == 200
    expected = by_source(whole.text)
    assert set(expected) == {None, *SOURCES}
    for source in SOURCES:
        response = exporter.probe(source)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        promtool_check_metrics(response.text)
        got = by_source(response.text)
        assert set(got) == {None, source}, "that source's series only"
        assert set(got[source]) == set(expected[source])
        for key, number in got[source].items():
            if key[0] in STEADY:
                assert number == expected[source][key], key
        assert {name for name, _ in got[None]} == EXPORTER_LEVEL
        assert value(response.text, "saas_backup_up", source=source) == 1
        assert value(response.text, "saas_backup_config_last_reload_successful") == 1


def test_a_probe_negotiates_as_metrics_does(exporter: Exporter) -> None:
    openmetrics = "application/openmetrics-text;version=1.0.0"
    response = exporter.probe(
        "backupify", headers={"Accept": openmetrics, "Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.headers["vary"] == "Accept, Accept-Encoding"
    # httpx has already undone the gzip that the header declares.
    assert response.headers["content-encoding"] == "gzip"
    assert response.text.endswith("# EOF\n")
    assert response.text.count("# EOF") == 1
    assert 'saas_backup_up{source="backupify"} 1.0' in response.text


def test_the_probe_body_is_the_metrics_body_cut_by_source() -> None:
    """At the same instant, every source's /probe together is /metrics, sample for sample,
    under every metrics setting (the per-seat cap is per source)."""
    for config in CONFIGS.values():
        fleet = states()
        whole = Exposition(config).body(fleet, 1e9, openmetrics=False, gzip=False)
        union: dict[Key, float] = {}
        for state in fleet:
            one = Exposition(config).body([state], 1e9, openmetrics=False, gzip=False)
            found = samples(one.content.decode())
            assert {dict(k[1]).get("source") for k in found} <= {None, state.name}
            union.update(found)
        assert union == samples(whole.content.decode())


def test_unknown_or_missing_targets_are_refused(exporter: Exporter) -> None:
    missing = exporter.get("/probe")
    assert missing.status_code == 400
    assert missing.text == "Target parameter is missing\n"
    unknown = exporter.probe("acme")
    assert unknown.status_code == 400
    assert "Unknown target 'acme'" in unknown.text
    assert "datto, backupify, cloudally" in unknown.text
    long = exporter.probe("x" * 5000)
    assert long.status_code == 400
    assert len(long.text) < 300, "the echo of a long target is cut"
    assert not exporter.sim.calls, "nothing was asked of a vendor"


def test_probes_share_the_cache_and_the_crawl_with_metrics(exporter: Exporter) -> None:
    sim = exporter.sim
    assert exporter.probe("datto").status_code == 200
    assert sim.calls["datto.domains"] == 1
    assert not any(k.startswith(("backupify.", "cloudally.")) for k in sim.calls), (
        "a probe crawls its own source only"
    )
    calls = dict(sim.calls)
    renders = exporter.app.state.exposition.renders
    assert exporter.probe("datto").status_code == 200
    assert dict(sim.calls) == calls, "cached: no vendor call"
    assert exporter.app.state.exposition.renders == renders, "/metrics' body is its own"
    # /metrics serves the data the probe read, and crawls only the sources not read yet.
    exporter.get("/metrics")
    assert sim.calls["datto.domains"] == 1


def test_a_probe_waits_no_longer_than_the_scrape_timeout(exporter: Exporter) -> None:
    """A vendor that hangs: the probe answers by its deadline with the source down, a probe of
    another source is not held up, and concurrent scrapes share the one crawl."""
    sim = exporter.sim
    sim.set_faults([parse_fault("hang@domains")])
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        hung = [pool.submit(exporter.probe, "datto", 2.0) for _ in range(3)]
        whole = pool.submit(exporter.get, "/metrics", 2.0)
        other = exporter.probe("cloudally", 10)
        assert other.status_code == 200
        assert value(other.text, "saas_backup_up", source="cloudally") == 1
        answers = [future.result() for future in hung]
        assert whole.result().status_code == 200
    # The deadline is 2 s less the 0.5 s offset; a loaded machine gets some slack.
    assert time.monotonic() - started < 6
    for answer in answers:
        assert answer.status_code == 200
        assert value(answer.text, "saas_backup_up", source="datto") == 0
    assert sim.calls["datto.domains"] == 1, "one crawl for every scrape"

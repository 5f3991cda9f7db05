"""The dashboards over either scrape style: every panel and template variable query runs in two
real Prometheus servers scraping the same exporter, one through /metrics and one through
deploy/prometheus.yml's per-source /probe block, and shows the same rows with the same values."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from exporter.app import build_app
from exporter.cli import demo_config
from exporter.simulator.app import Simulator
from tests.conftest import Prometheus, ServerThread
from tests.test_dashboards import UIDS, load, panels, variables
from tests.test_dashboards_live import BUILTINS, resolve_variable, substitute
from tests.test_probe_alerting import metrics_job, probe_job, without_instance

Rows = dict[frozenset[tuple[str, str]], float]


@pytest.fixture(scope="module")
def styles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Prometheus]]:
    sim = Simulator(customers=12, seats_per_customer=25, seed=1)  # `make demo`'s fleet
    with ServerThread(sim.app()) as sim_server:
        # The demo's TTL: the data stays put while both servers scrape it.
        exporter = ServerThread(build_app(demo_config(sim_server.url, sim))).start()
        address = f"127.0.0.1:{exporter.port}"
        started = []
        try:
            for folder, job in (("metrics", metrics_job(address)), ("probe", probe_job(address))):
                prom = Prometheus(tmp_path_factory.mktemp(folder), {"scrape_configs": [job]})
                started.append(prom.start())
            for prom in started:
                # rate() over [1m] needs two samples; take a few more.
                prom.wait_for(
                    "min(count_over_time(saas_backup_up[1m])) and count(saas_backup_up == 1) == 3",
                    lambda r: bool(r) and float(r[0]["value"][1]) >= 4,
                    timeout=60,
                )
            yield started[0], started[1]
        finally:
            for prom in started:
                prom.stop()
            exporter.stop()


def rows(prom: Prometheus, expr: str, at: float) -> Rows:
    reply = prom.api("/api/v1/query", query=expr, time=at)
    assert reply["status"] == "success", (expr, reply)
    assert not reply.get("warnings"), (expr, reply["warnings"])
    out: Rows = {}
    for series in reply["data"]["result"]:
        key, number = without_instance(series["metric"]), float(series["value"][1])
        # Series without a source (`up`, build info) come once per source's target: the same.
        assert key not in out or close(out[key], number), f"{expr}: {dict(key)} differs"
        out[key] = number
    return out


def close(a: float, b: float) -> bool:
    # The two servers scrape a second apart: the ages the exporter computes move by that much.
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-3, abs_tol=3)


@pytest.mark.parametrize("name", sorted(UIDS))
def test_every_dashboard_query_is_the_same_in_either_style(
    styles: tuple[Prometheus, Prometheus], name: str
) -> None:
    whole, per_source = styles
    dashboard = load(name)
    values = dict(BUILTINS)
    for var, variable in variables(dashboard).items():
        if variable["type"] == "query":
            found = resolve_variable(whole, variable, values)
            assert found, var
            if var != "instance":
                assert sorted(resolve_variable(per_source, variable, values)) == sorted(found)
        values[var] = variable.get("allValue") or ".*"
    at = time.time()
    shown = 0
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], values)
            expected, got = rows(whole, expr, at), rows(per_source, expr, at)
            assert set(got) == set(expected), (panel["title"], expr)
            for key, number in expected.items():
                assert close(got[key], number), (panel["title"], dict(key), got[key], number)
            shown += bool(expected)
    assert shown > 5, "the panels show data"

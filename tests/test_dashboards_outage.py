"""The fleet's top row through an outage, in a real Prometheus: a healthy fleet shows real 0s;
while a source's API fails, the counts it could falsify show nothing (Grafana's "unknown"), not
a green 0, and the sources still up keep theirs; with the exporter gone, nothing shows at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.app import build_app
from exporter.cli import demo_config
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.scenarios import heal
from tests.conftest import Prometheus, ServerThread
from tests.test_dashboards import load, panels
from tests.test_dashboards_live import BUILTINS, EVERY_EXPORTER, Live, run_dashboard

COUNTS = [
    "Unreadable customers",
    "Customers needing attention",
    "Failed backups",
    "Failed restores, 24 h",
]


class Outage:
    def __init__(self, tmp_path: Path) -> None:
        self.sim = Simulator(customers=4, seats_per_customer=4, seed=5)
        heal(self.sim)
        self.sim_server = ServerThread(self.sim.app()).start()
        config = demo_config(
            self.sim_server.url, self.sim, ttl_seconds=1, timeout_seconds=5, retry={"attempts": 1}
        )
        self.exporter: ServerThread | None = ServerThread(build_app(config)).start()
        self.prometheus = Prometheus(
            tmp_path,
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "saas-backup",
                        "static_configs": [{"targets": [f"127.0.0.1:{self.exporter.port}"]}],
                    }
                ],
            },
        ).start()

    def stop_exporter(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None

    def stop(self) -> None:
        self.prometheus.stop()
        self.stop_exporter()
        self.sim_server.stop()

    def top_row(self, source: str = ".+") -> dict[str, list[dict[str, Any]]]:
        """Each top-row stat's result, as the fleet opens with these sources chosen."""
        fleet = load("fleet-overview.json")
        top = {p["title"] for p in panels(fleet) if p["gridPos"]["y"] == 0}
        values = {**BUILTINS, **EVERY_EXPORTER, "source": source}
        # run_dashboard asks Prometheus only, never the exporter (which may be gone).
        outcomes = run_dashboard(Live(self.prometheus, self.sim_server), fleet, values)
        assert not [o.error for o in outcomes if o.error]
        return {o.panel: o.result for o in outcomes if o.panel in top}


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    running = Outage(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def by_source(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"]["source"]: float(r["value"][1]) for r in result}


@pytest.mark.tools
def test_no_fake_zero_through_an_outage(outage: Outage) -> None:
    prometheus = outage.prometheus
    prometheus.wait_for("count(saas_backup_up == 1)", lambda r: r and r[0]["value"][1] == "3")
    healthy = outage.top_row()
    assert by_source(healthy["Sources"]) == {"backupify": 1, "cloudally": 1, "datto": 1}
    assert set(by_source(healthy["Data age"])) == {"backupify", "cloudally", "datto"}
    for title in COUNTS:
        assert values(healthy[title]) == [0], title  # a real 0: every source up, nothing wrong

    # Datto's customer list fails: the source goes down beside its last data.
    outage.sim.set_faults([parse_fault("500@domains")])
    prometheus.wait_for('saas_backup_up{source="datto"}', lambda r: r and r[0]["value"][1] == "0")
    down = outage.top_row()
    assert by_source(down["Sources"]) == {"backupify": 1, "cloudally": 1, "datto": 0}
    assert "datto" in by_source(down["Data age"])
    for title in COUNTS:
        assert down[title] == [], f"{title}: a 0 while datto is down"
    # The sources still up keep their real 0.
    others = outage.top_row("backupify|cloudally")
    for title in COUNTS:
        assert values(others[title]) == [0], title
    # As the issue found it: the old `or vector(0)` shows a green 0 here.
    bare = 'count(saas_backup_customer_up{source=~"datto"} == 0)'
    assert values(prometheus.query(f"{bare} or vector(0)")) == [0]

    # The exporter goes away: no data anywhere in the top row, not one 0.
    outage.stop_exporter()
    prometheus.wait_for('up{job="saas-backup"}', lambda r: r and r[0]["value"][1] == "0")
    gone = outage.top_row()
    assert len(gone) == 6
    assert all(result == [] for result in gone.values()), gone

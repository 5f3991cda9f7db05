"""The shipped alert rules over either scrape style, in real Prometheus: the one job scraping
/metrics, and deploy/prometheus.yml's per-source /probe block as it is written there, side by
side on the same exporter. For a healthy fleet and for an incident, the recording rules and the
alerts come out the same. The block's hashmod rules put each source on exactly one server."""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.app import build_app
from exporter.cli import demo_config
from exporter.simulator.app import Simulator
from exporter.simulator.scenarios import heal, make_incident
from tests.alertstack import RULES, shortened_rules
from tests.conftest import Prometheus, ServerThread, require_tool

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "prometheus.yml"
BLOCK_START = "  # - job_name: saas-backup"
EXAMPLE_EXPORTER = "saas-backup-exporter:10049"
SOURCES = {"datto", "backupify", "cloudally"}
RECORDS = sorted(
    {
        rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
)
Series = frozenset[tuple[str, str]]


def probe_block() -> dict[str, Any]:
    """The commented-out /probe job of deploy/prometheus.yml, as YAML."""
    lines = DEPLOY.read_text().splitlines()
    block = []
    for line in lines[lines.index(BLOCK_START) :]:
        if not line.startswith("  #"):
            break
        block.append(line[4:])
    jobs = yaml.safe_load("\n".join(block))
    assert isinstance(jobs, list)
    assert len(jobs) == 1
    job: dict[str, Any] = jobs[0]
    return job


def probe_job(exporter: str, *, interval: str = "1s", shard: tuple[int, int] | None = None) -> Any:
    """The block, pointed at ``exporter``; ``shard``: (modulus, this server's number)."""
    job = copy.deepcopy(probe_block())
    for group in job["static_configs"]:
        group["targets"] = [t.replace(EXAMPLE_EXPORTER, exporter) for t in group["targets"]]
    job["scrape_interval"] = job["scrape_timeout"] = interval
    if shard is not None:
        hashmod = [r for r in job["relabel_configs"] if r.get("action") == "hashmod"]
        keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
        assert len(hashmod) == len(keep) == 1
        hashmod[0]["modulus"], keep[0]["regex"] = shard[0], str(shard[1])
    return job


def metrics_job(exporter: str) -> dict[str, Any]:
    return {
        "job_name": "saas-backup",
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "static_configs": [{"targets": [exporter]}],
    }


def without_instance(labels: dict[str, str]) -> Series:
    return frozenset((k, v) for k, v in labels.items() if k != "instance")


class Monitor:
    """One Prometheus with the shortened shipped rules and one scrape job."""

    def __init__(self, folder: Path, job: dict[str, Any]) -> None:
        folder.mkdir()
        shortened_rules(folder / "rules.yml")
        config = {
            "global": {"evaluation_interval": "1s"},
            "rule_files": [str(folder / "rules.yml")],
            "scrape_configs": [job],
        }
        self.prom = Prometheus(folder, config).start()

    def alerts(self, *states: str) -> set[tuple[Series, str]]:
        reply = self.prom.api("/api/v1/alerts")
        return {
            (without_instance(a["labels"]), a["state"])
            for a in reply["data"]["alerts"]
            if a["state"] in states
        }

    def recorded(self) -> dict[Series, float]:
        result = self.prom.query('{__name__=~"' + "|".join(RECORDS) + '"}')
        return {without_instance(r["metric"]): float(r["value"][1]) for r in result}

    def settled(self, seconds: int) -> bool:
        """Every source scraped with data for ``seconds`` scrapes: any alert whose short `for:`
        starts with the data has fired."""
        result = self.prom.query(f"min(count_over_time(saas_backup_up[1m])) >= {seconds}")
        sources = self.prom.query("count(saas_backup_up)")
        return bool(result) and bool(sources) and float(sources[0]["value"][1]) == len(SOURCES)


@pytest.fixture
def both_styles(tmp_path: Path) -> Iterator[Callable[[Simulator], tuple[Monitor, Monitor]]]:
    started: list[Any] = []

    def start(sim: Simulator) -> tuple[Monitor, Monitor]:
        sim_server = ServerThread(sim.app()).start()
        started.append(sim_server)
        config = demo_config(
            sim_server.url, sim, ttl_seconds=1, timeout_seconds=5, retry={"attempts": 1}
        )
        exporter = ServerThread(build_app(config)).start()
        started.append(exporter)
        address = f"127.0.0.1:{exporter.port}"
        whole = Monitor(tmp_path / "metrics", metrics_job(address))
        per_source = Monitor(tmp_path / "probe", probe_job(address))
        started.extend([whole.prom, per_source.prom])
        return whole, per_source

    yield start
    for thing in reversed(started):
        thing.stop()


def eventually(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, ValueError, KeyError, AssertionError):
            pass  # Prometheus is still starting
        time.sleep(0.5)
    raise AssertionError(f"never: {what}")


def test_a_healthy_fleet_raises_nothing_in_either_style(both_styles: Any) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    heal(sim)
    whole, per_source = both_styles(sim)
    eventually(lambda: whole.settled(8) and per_source.settled(8), "every source scraped")
    for monitor in (whole, per_source):
        assert monitor.alerts("firing", "pending") == set()
    eventually(lambda: whole.recorded() == per_source.recorded(), "the same recordings")
    assert any(name == "saas_backup_customer:info:name" for name in dict_names(whole.recorded()))


def dict_names(recorded: dict[Series, float]) -> set[str]:
    return {dict(labels)["__name__"] for labels in recorded}


def test_an_incident_raises_the_same_alerts_in_either_style(both_styles: Any) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    incident = make_incident(sim)
    whole, per_source = both_styles(sim)
    expected = {
        "SaaSBackupSeatsNotBackedUp72h",
        "SaaSBackupSeatsNotBackedUp24h",
        "SaaSBackupRestoreFailed",
        "SaaSBackupRunningTooLong",
    }

    def names(monitor: Monitor) -> set[str]:
        return {dict(labels)["alertname"] for labels, _ in monitor.alerts("firing")}

    eventually(lambda: names(whole) == expected, "the incident's alerts over /metrics")
    eventually(
        lambda: per_source.alerts("firing") == whole.alerts("firing"),
        "the same alerts, with the same labels, over /probe",
    )
    stale = [
        dict(labels)
        for labels, _ in per_source.alerts("firing")
        if dict(labels)["alertname"] == "SaaSBackupSeatsNotBackedUp72h"
    ]
    assert [a["customer_id"] for a in stale] == [incident.of("stale_seats").customer_id]
    assert stale[0]["job"] == "saas-backup", "the rules' job matcher holds"
    eventually(lambda: whole.recorded() == per_source.recorded(), "the same recordings")


def test_the_probe_block_is_valid_and_hashmod_puts_each_source_on_one_server(
    tmp_path: Path,
) -> None:
    """Three servers' worth of the block (modulus 3), as three jobs of one Prometheus: every
    source is kept by exactly one of them. And the block passes `promtool check config`."""
    exporter = "127.0.0.1:9"
    jobs = []
    for number in range(3):
        job = probe_job(exporter, interval="1h", shard=(3, number))
        job["job_name"] = f"shard-{number}"
        jobs.append(job)
    config = {"scrape_configs": jobs}
    (tmp_path / "check.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [require_tool("promtool"), "check", "config", str(tmp_path / "check.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    prom = Prometheus(tmp_path, config).start()
    try:
        kept: dict[str, list[str]] = {}

        def all_kept() -> bool:
            targets = prom.api("/api/v1/targets", state="active")["data"]["activeTargets"]
            kept.clear()
            for target in targets:
                source = target["scrapeUrl"].rsplit("target=", 1)[-1]
                kept.setdefault(source, []).append(target["labels"]["job"])
                assert target["labels"]["instance"] == f"{source}@{exporter}"
                assert target["scrapeUrl"] == f"http://{exporter}/probe?target={source}"
            return set(kept) == SOURCES

        eventually(all_kept, "every source's target", timeout=30)
        assert all(len(jobs) == 1 for jobs in kept.values()), kept
        assert len({jobs[0] for jobs in kept.values()}) > 1, "spread over several servers"
    finally:
        prom.stop()

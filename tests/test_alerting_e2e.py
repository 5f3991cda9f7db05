"""End to end: simulator -> exporter -> real Prometheus with the shipped rules -> real
Alertmanager with the example config -> a webhook inside the test.

The promtool tests prove every `for:` boundary, so here a copy of the rules has its `for:`
durations shortened, and a copy of the Alertmanager config has its receivers pointed at the
test's webhook and its group_wait shortened; nothing else changes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.app import build_app
from exporter.cli import demo_config
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.scenarios import heal, make_incident
from tests.conftest import Prometheus, ServerThread, binary, free_port, wait_for

ROOT = Path(__file__).parent.parent
RULES = ROOT / "alerts" / "saas-backup.rules.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager.yml"
FOR = "3s"
GROUP_WAIT = "6s"


@dataclass
class Webhook:
    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def firing(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for n in self.notifications for a in n["alerts"] if a["status"] == "firing"]

    def count(self) -> int:
        with self.lock:
            return len(self.notifications)


@pytest.fixture
def webhook() -> Iterator[tuple[Webhook, str]]:
    received = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with received.lock:
                received.notifications.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        # Alertmanager flushes every group at once: 100 connections must not meet a full
        # backlog (the default is 5), or notifications wait for Alertmanager's retries.
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def shortened_rules(target: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                # Until Prometheus's first scrape `up` is absent: give that alert a margin.
                rule["for"] = "30s" if rule["alert"] == "SaaSBackupExporterAbsent" else FOR
    target.write_text(yaml.safe_dump(rules))


def alertmanager_config(target: Path, hook: str) -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for webhook_config in receiver.get("webhook_configs", []):
            webhook_config["url"] = hook
    config["route"]["group_wait"] = GROUP_WAIT
    target.write_text(yaml.safe_dump(config))


class Stack:
    """Exporter (in-process), Prometheus and Alertmanager (real binaries) on loopback."""

    def __init__(
        self, sim: Simulator, tmp: Path, hook: str, scrape_interval: str, ttl: float
    ) -> None:
        self.scrape_interval = scrape_interval
        self.ttl = ttl
        self.sim = sim
        self.tmp = tmp
        self.hook = hook
        self.processes: list[subprocess.Popen[bytes]] = []
        self.servers: list[ServerThread] = []
        self.prom: Prometheus | None = None

    def start(self) -> Stack:
        sim_server = ServerThread(self.sim.app()).start()
        self.servers.append(sim_server)
        # The demo's sources, as each vendor sets them up for its simulator part.
        config = demo_config(
            sim_server.url,
            self.sim,
            ttl_seconds=self.ttl,
            timeout_seconds=5,
            retry={"attempts": 1},
        )
        exporter = ServerThread(build_app(config)).start()
        self.servers.append(exporter)
        self.exporter = exporter
        return self

    def monitor(self) -> Stack:
        """Start Alertmanager and Prometheus, scraping the exporter."""
        exporter = self.exporter
        am_port = free_port()
        alertmanager_config(self.tmp / "alertmanager.yml", self.hook)
        self.processes.append(
            subprocess.Popen(
                [
                    binary("prometheus-alertmanager", "alertmanager"),
                    f"--config.file={self.tmp / 'alertmanager.yml'}",
                    f"--storage.path={self.tmp / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        shortened_rules(self.tmp / "rules.yml")
        self.prom = Prometheus(
            self.tmp,
            {
                "global": {
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "evaluation_interval": "1s",
                },
                "rule_files": [str(self.tmp / "rules.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "saas-backup",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                    }
                ],
            },
        ).start()
        self.prometheus = self.prom.url
        return self

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        reply = httpx.get(self.prometheus + "/api/v1/alerts", timeout=5).json()
        alerts: list[dict[str, Any]] = reply["data"]["alerts"]
        return alerts

    def wait_scraped(self, timeout: float = 30, up: int = 3) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = httpx.get(
                    self.prometheus + "/api/v1/query",
                    params={"query": "count(saas_backup_up == 1)"},
                    timeout=5,
                ).json()
                result = reply["data"]["result"]
                if result and float(result[0]["value"][1]) == up:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass  # Prometheus is still starting
            time.sleep(0.25)
        raise AssertionError(f"Prometheus never saw {up} sources up")

    def stop(self) -> None:
        if self.prom is not None:
            self.prom.stop()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for server in reversed(self.servers):
            server.stop()


@pytest.fixture
def stack(tmp_path: Path, webhook: tuple[Webhook, str]) -> Iterator[Any]:
    started: list[Stack] = []

    def make(
        sim: Simulator, *, monitor: bool = True, scrape_interval: str = "1s", ttl: float = 1
    ) -> Stack:
        stack = Stack(sim, tmp_path, webhook[1], scrape_interval, ttl).start()
        started.append(stack)
        return stack.monitor() if monitor else stack

    yield make
    for stack in started:
        stack.stop()


def wait_for_alerts(hook: Webhook, names: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if names <= {a["labels"]["alertname"] for a in hook.firing()}:
            return
        time.sleep(0.25)
    got = sorted({a["labels"]["alertname"] for a in hook.firing()})
    raise AssertionError(f"expected {sorted(names)}, got {got}")


def settle() -> None:
    """Long enough for any further alert to pass `for:` and Alertmanager's group_wait."""
    time.sleep(10)


def test_healthy_fleet_raises_nothing(stack: Any, webhook: tuple[Webhook, str]) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    heal(sim)
    running = stack(sim)
    running.wait_scraped()
    settle()
    hook = webhook[0]
    assert hook.notifications == []
    assert [a["labels"]["alertname"] for a in running.prometheus_alerts()] == []


def test_incident_raises_exactly_the_expected_alerts(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    incident = make_incident(sim)
    running = stack(sim)
    running.wait_scraped()
    hook = webhook[0]
    expected = {
        "SaaSBackupSeatsNotBackedUp72h",
        "SaaSBackupRestoreFailed",
        "SaaSBackupRunningTooLong",
    }
    wait_for_alerts(hook, expected)
    settle()
    firing = hook.firing()
    assert {a["labels"]["alertname"] for a in firing} == expected, firing
    by_name = {a["labels"]["alertname"]: a for a in firing}
    seats = by_name["SaaSBackupSeatsNotBackedUp72h"]
    stale_seats = incident.of("stale_seats")
    assert seats["labels"]["customer_id"] == stale_seats.customer_id
    assert stale_seats.customer_name in seats["annotations"]["description"]
    failed_restore = incident.of("failed_restore")
    restore_description = by_name["SaaSBackupRestoreFailed"]["annotations"]["description"]
    assert failed_restore.customer_name in restore_description
    assert failed_restore.item_id in restore_description
    assert (
        incident.of("long_backup").customer_name
        in by_name["SaaSBackupRunningTooLong"]["annotations"]["description"]
    )
    # The 24 h alert fires in Prometheus too, and Alertmanager holds it back.
    in_prometheus = {
        a["labels"]["alertname"] for a in running.prometheus_alerts() if a["state"] == "firing"
    }
    assert "SaaSBackupSeatsNotBackedUp24h" in in_prometheus


def test_source_outage_is_one_notification(stack: Any, webhook: tuple[Webhook, str]) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    incident = make_incident(sim)
    running = stack(sim, monitor=False)
    metrics = running.exporter.url + "/metrics"
    # Datto's data is in, with a customer's seats stale for 3 days; then its API fails.
    wait_for(metrics, 'saas_backup_up{source="datto"} 1.0')
    sim.set_faults([parse_fault("500@domains")])
    time.sleep(1.1)
    wait_for(metrics, 'saas_backup_up{source="datto"} 0.0')
    running.monitor()
    running.wait_scraped(up=2)
    hook = webhook[0]
    wait_for_alerts(hook, {"SaaSBackupSourceDown"})
    settle()
    datto = [a for a in hook.firing() if a["labels"].get("source") == "datto"]
    assert [a["labels"]["alertname"] for a in datto] == ["SaaSBackupSourceDown"]
    # The stale seats still fire in Prometheus, beside up=0: Alertmanager inhibits them.
    in_prometheus = [a for a in running.prometheus_alerts() if a["state"] == "firing"]
    stale = [
        a for a in in_prometheus if a["labels"]["alertname"] == "SaaSBackupSeatsNotBackedUp72h"
    ]
    assert stale
    assert stale[0]["labels"]["customer_id"] == incident.of("stale_seats").customer_id


def test_ten_thousand_stale_seats_are_at_most_a_hundred_notifications(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    sim = Simulator(customers=100, seats_per_customer=100, seed=9, shape="spec")
    heal(sim)
    stale = 0
    for customer in sim.fleet.customers:
        # Exactly 100 seats each, all licensed and 4 days stale.
        template = customer.seats[0]
        customer.seats = [
            replace(
                template, remote_id=f"{customer.id}-{n}", state="Active", backup_age=4 * 86400.0
            )
            for n in range(100)
        ]
        stale += len(customer.seats)
    assert stale == 10_000
    # A 10,000-seat scrape takes a while on a busy 2-core machine: give it room, and refresh
    # only once (the simulator shares this process), so that scrapes serve cached bytes.
    running = stack(sim, scrape_interval="5s", ttl=600)
    running.wait_scraped(timeout=90)
    hook = webhook[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and hook.count() < 100:
        time.sleep(0.5)
    settle()
    other = {a["labels"]["alertname"] for a in hook.firing()} - {"SaaSBackupSeatsNotBackedUp72h"}
    assert not other, other
    assert hook.count() <= 100
    customers = {
        a["labels"]["customer_id"]
        for a in hook.firing()
        if a["labels"]["alertname"] == "SaaSBackupSeatsNotBackedUp72h"
    }
    assert len(customers) == 100, "every customer is told about, once"
    counts = {a["annotations"]["description"].split(" ", 1)[0] for a in hook.firing()}
    assert counts == {"100"}


def test_the_live_demo_fleet_raises_the_live_signals(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    """`make demo`'s fleet in the vendors' live shapes: Datto services missed in the last day,
    a failed Backupify instance and a stale CloudAlly task each reach Alertmanager."""
    sim = Simulator(customers=12, seats_per_customer=25, seed=1, shape="live")
    running = stack(sim, scrape_interval="2s")
    running.wait_scraped(timeout=60)
    hook = webhook[0]
    live = {
        "SaaSBackupServicesNotBackedUp": "datto",
        "SaaSBackupInstanceBackupFailed": "backupify",
        "SaaSBackupApplicationBackupStale": "cloudally",
    }
    wait_for_alerts(hook, set(live), timeout=90)
    for name, source in live.items():
        alerts = [a for a in hook.firing() if a["labels"]["alertname"] == name]
        assert {a["labels"]["source"] for a in alerts} == {source}, (name, alerts)
    missed = next(
        a for a in hook.firing() if a["labels"]["alertname"] == "SaaSBackupServicesNotBackedUp"
    )
    customer = sim.fleet.customer(missed["labels"]["customer_id"])
    assert customer is not None
    assert customer.name in missed["annotations"]["description"]
    assert " of " in missed["annotations"]["description"]
    assert "not backed up in the last day" in missed["annotations"]["description"]

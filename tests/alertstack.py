"""The end-to-end alerting stack: simulator -> exporter -> real Prometheus with the shipped rules
-> real Alertmanager with the example config -> a webhook inside the test.

The promtool tests prove every `for:` boundary, so here a copy of the rules has its `for:`
durations shortened (but for the exporter-down alerts, whose real `for:` is what a restart must
stay under), and a copy of the Alertmanager config has its receivers pointed at the test's
webhook, one path per receiver, and its group_wait and group_interval shortened, so that any
change to a group would be notified within a test's wait; nothing else changes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.app import build_app
from exporter.cli import demo_config
from exporter.config import Config
from exporter.simulator.app import Simulator
from tests.conftest import Prometheus, ServerThread, binary, free_port

ROOT = Path(__file__).parent.parent
RULES = ROOT / "alerts" / "saas-backup.rules.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager.yml"
FOR = "3s"
GROUP_WAIT = "6s"
GROUP_INTERVAL = "5s"
# Their real `for:`: an exporter restart must not reach it.
REAL_FOR = {"SaaSBackupExporterDown"}


@dataclass
class Webhook:
    """What Alertmanager sent: each notification with `receiver` set to the path it came to."""

    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def firing(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for n in self.notifications for a in n["alerts"] if a["status"] == "firing"]

    def resolved(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a for n in self.notifications for a in n["alerts"] if a["status"] == "resolved"]

    def count(self, receiver: str | None = None) -> int:
        with self.lock:
            return sum(1 for n in self.notifications if receiver in (None, n["receiver"]))


@pytest.fixture
def webhook() -> Iterator[tuple[Webhook, str]]:
    received = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            notification = json.loads(body)
            notification["receiver"] = self.path.rsplit("/", 1)[-1]
            with received.lock:
                received.notifications.append(notification)
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
            if "for" in rule and rule["alert"] not in REAL_FOR:
                # Until Prometheus's first scrape `up` is absent: give that alert a margin.
                rule["for"] = "30s" if rule["alert"] == "SaaSBackupExporterAbsent" else FOR
    target.write_text(yaml.safe_dump(rules))


def alertmanager_config(target: Path, hook: str) -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for webhook_config in receiver.get("webhook_configs", []):
            webhook_config["url"] = f"{hook}/{receiver['name']}"
    config["route"]["group_wait"] = GROUP_WAIT
    config["route"]["group_interval"] = GROUP_INTERVAL
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
            state_file=self.tmp / "state.db",
            # Generous: the machine may be busy, and a slow answer is not what these test.
            timeout_seconds=30,
            retry={"attempts": 2},
        )
        self.config: Config = config
        exporter = ServerThread(build_app(config)).start()
        self.servers.append(exporter)
        self.exporter = exporter
        return self

    def restart_exporter(self) -> None:
        """Stop the exporter and start a new one on the same address, from its state file."""
        port = self.exporter.port
        self.exporter.stop()
        self.servers.remove(self.exporter)
        self.exporter = ServerThread(build_app(self.config), port=port).start()
        self.servers.append(self.exporter)

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

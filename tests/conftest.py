"""Shared test plumbing: real servers on loopback sockets, external tools, config builders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import build_app
from exporter.config import build_config
from exporter.model import Snapshot, merge
from exporter.simulator.app import Simulator
from exporter.simulator.serve import listening_socket
from exporter.simulator.serve import serve as serve_simulator
from exporter.source import Source, Store

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """The tool's path. Missing: a skip on a laptop, a failure under CI=true."""
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.exists() else shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed (the Debian packages prometheus/prometheus-alertmanager)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main()` points logging at the captured stderr of the test that called it."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def promtool_check_metrics(body: str | bytes) -> None:
    """promtool must accept the exposition without a single lint remark."""
    promtool = require_tool("promtool")
    data = body.encode() if isinstance(body, str) else body
    result = subprocess.run(
        [promtool, "check", "metrics"], input=data, capture_output=True, timeout=60, check=False
    )
    remarks = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, remarks
    assert remarks == "", f"promtool lint remarks: {remarks}"


def promtool_test_rules(path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` on a test file; the caller judges the outcome."""
    return subprocess.run(
        [require_tool("promtool"), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread of its own."""

    def __init__(self, app: Any, port: int = 0, **options: Any) -> None:
        # A given port: a restarted server on the address its clients already use.
        self._sock = listening_socket("127.0.0.1", port)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options.setdefault("timeout_graceful_shutdown", 1)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", **options)
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve(sockets=[self._sock]))
        self.loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[ServerThread]:
    with ServerThread(app, **options) as server:
        yield server


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def series(body: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for (sample, label_set), value in samples(body).items():
        if sample == name and all((k, v) in label_set for k, v in labels.items()):
            found.append((dict(label_set), value))
    return found


def value(body: str, name: str, **labels: str) -> float:
    matches = series(body, name, **labels)
    assert len(matches) == 1, (name, labels, matches)
    return matches[0][1]


def wait_for(url: str, predicate: str, timeout: float = 30, **kwargs: Any) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5, **kwargs)
            if predicate in response.text:
                return response
            last = response.text[:200]
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} never showed {predicate!r}: {last!r}")


def datto_source(base_url: str, **overrides: Any) -> dict[str, Any]:
    source: dict[str, Any] = {
        "name": "datto",
        "type": "datto",
        "base_url": base_url,
        "public_key": "demo-public",
        "private_key": "demo-private",
        "timeout_seconds": 5,
        "refresh_timeout_seconds": 20,
        "retry": {
            "attempts": 2,
            "initial_backoff_seconds": 0.05,
            "max_backoff_seconds": 0.2,
            "jitter_seconds": 0.05,
        },
    }
    source.update(overrides)
    return source


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(*names: str) -> str:
    """The first of the named Debian binaries installed. Missing: a skip, or under CI a failure."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"none of {names} installed (Debian packages prometheus, prometheus-alertmanager)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class Prometheus:
    """A real Prometheus server on loopback, with the given configuration, in a scratch folder."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = folder
        self.config = config
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        config_file = self.folder / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config))
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.folder / 'prom-data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def api(self, path: str, **params: str | float) -> dict[str, Any]:
        """One call of the HTTP API; its JSON reply whether it succeeded or not."""
        reply: dict[str, Any] = httpx.get(self.url + path, params=params, timeout=30).json()
        return reply

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = self.api("/api/v1/query", query=expr)
        assert reply["status"] == "success", (expr, reply)
        result: list[dict[str, Any]] = reply["data"]["result"]
        return result

    def wait_for(self, expr: str, predicate: Any, timeout: float = 30) -> None:
        """Until the instant query's result satisfies the predicate (Prometheus may be starting)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self.query(expr)
                if predicate(last):
                    return
            except (httpx.HTTPError, ValueError, KeyError, AssertionError) as exc:
                last = exc
            time.sleep(0.25)
        raise AssertionError(f"Prometheus: {expr} never as expected; last: {last!r}")


# Backupify v1 and CloudAlly sources against the simulator.
RETRY = {
    "attempts": 2,
    "initial_backoff_seconds": 0.05,
    "max_backoff_seconds": 0.2,
    "jitter_seconds": 0.05,
}


def backupify_source(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "backupify",
        "type": "backupify",
        "base_url": base_url,
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "timeout_seconds": 5,
        "retry": RETRY,
        **overrides,
    }


def cloudally_source(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "cloudally",
        "type": "cloudally",
        "base_url": base_url,
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "timeout_seconds": 5,
        "retry": RETRY,
        **overrides,
    }


@pytest.fixture
def sim_server() -> Iterator[tuple[Simulator, ServerThread]]:
    sim = Simulator(customers=6, seats_per_customer=5, seed=3, token_ttl=3600)
    with ServerThread(sim.app()) as server:
        yield sim, server


def exporter_for(*sources: dict[str, Any], ttl: float = 300) -> Any:
    config = build_config(
        {"cache": {"ttl_seconds": ttl, "warm_up": False}, "sources": list(sources)}
    )
    return build_app(config)


def scrape(exporter: ServerThread) -> str:
    response = httpx.get(
        exporter.url + "/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "15"}, timeout=30
    )
    assert response.status_code == 200
    return response.text


@contextmanager
def served_simulator(sim: Simulator) -> Iterator[str]:
    """``serve()``, as the simulator command and the demo run it, in a thread; its URL.
    Cancelling it (how the demo stops it) ends the thread."""
    announced: list[str] = []
    loop = asyncio.new_event_loop()
    task = loop.create_task(serve_simulator(sim, "127.0.0.1", 0, ready=announced.append))

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not announced and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(announced) == 1, "serve() announces its URL once"
        yield announced[0]
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(5)
        loop.close()
    assert not thread.is_alive()


async def collect_all(source: Source[Any], store: Store) -> Snapshot:
    """One whole crawl of a source, every customer in order, as one snapshot."""
    listing = await source.listing(store)
    parts = [await source.read(store, cid, unit) for cid, unit in listing.customers.items()]
    return merge((p.records for p in parts), min((p.oldest for p in parts), default=0.0))

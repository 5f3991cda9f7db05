"""Reloading the config while serving, over real sockets against the simulator: POST /-/reload
behind the lifecycle flag, unchanged sources keeping their cache and crawl, removed ones gone,
added ones crawled, changed ones restored from the state file, an invalid config refused
without a secret anywhere, and the web config swapped for new connections.
tests/test_reload_signal.py sends SIGHUP to the real command."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml

from exporter.app import build_app
from exporter.config import build_config, load_config
from exporter.persist import fingerprint
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.state import StateFile
from exporter.webconfig import LiveWebConfig, load_web_config
from tests.conftest import (
    ServerThread,
    backupify_source,
    cloudally_source,
    datto_source,
    samples,
    series,
    value,
)
from tests.webcerts import make_certs

CANARIES = ("canary-private-kee-5d1f0b7e", "canary-client-secret-93a2c4")
RELOADED = "saas_backup_config_last_reload_successful"
RELOADED_AT = "saas_backup_config_last_reload_success_timestamp_seconds"


@dataclass
class Running:
    sim: Simulator
    sim_url: str
    config_file: Path
    app: Any = None
    server: ServerThread | None = None

    def write(self, *sources: dict[str, Any], **cache: Any) -> None:
        data = {"cache": {"ttl_seconds": 600, **cache}, "sources": list(sources)}
        self.config_file.write_text(yaml.safe_dump(data))

    def start(self, *, lifecycle: bool = True, web: LiveWebConfig | None = None) -> Running:
        config = load_config(self.config_file)
        self.app = build_app(config, web=web, config_file=self.config_file, lifecycle=lifecycle)
        self.server = ServerThread(self.app)
        if web is not None and web.current.tls is not None:
            # As the command line does it (exporter.cli._serve).
            self.server.server.config.load()
            self.server.server.config.ssl = web.ssl_context()
        self.server.start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def scrape(self, **kwargs: Any) -> str:
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "15"}
        response = httpx.get(self.url + "/metrics", headers=headers, timeout=30, **kwargs)
        assert response.status_code == 200
        return response.text

    def reload(self, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + "/-/reload", timeout=30, **kwargs)

    def calls(self, vendor: str) -> dict[str, int]:
        return {k: v for k, v in self.sim.calls.items() if k.startswith(f"{vendor}.")}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    sim = Simulator(customers=4, seats_per_customer=5, seed=3, token_ttl=3600)
    with ServerThread(sim.app()) as sim_server:
        run = Running(sim, sim_server.url, tmp_path / "config.yml")
        yield run
        if run.server is not None:
            run.server.stop()


def sources_in(body: str) -> set[str]:
    return {labels["source"] for labels, _ in series(body, "saas_backup_up")}


def test_the_lifecycle_api_is_off_unless_enabled(running: Running) -> None:
    running.write(datto_source(running.sim_url), warm_up=False)
    running.start(lifecycle=False)
    for method in ("POST", "PUT"):
        refused = httpx.request(method, running.url + "/-/reload", timeout=10)
        assert (refused.status_code, refused.text) == (403, "Lifecycle API is not enabled.\n")
    got = httpx.get(running.url + "/-/reload", timeout=10)
    assert (got.status_code, got.text) == (405, "Only POST or PUT requests allowed\n")


def test_a_reload_keeps_unchanged_sources_drops_removed_and_crawls_added(
    running: Running,
) -> None:
    datto = datto_source(running.sim_url)
    running.write(datto, backupify_source(running.sim_url))
    running.start()
    before = running.scrape()
    assert sources_in(before) == {"datto", "backupify"}
    assert value(before, RELOADED) == 1
    datto_calls = running.calls("datto")
    runner = running.app.state.live.runner("datto")
    requests = series(before, "saas_backup_api_requests_total", source="datto")

    running.write(datto, cloudally_source(running.sim_url))
    reply = running.reload()
    assert (reply.status_code, reply.text) == (200, "Reloaded\n")
    after = running.scrape()
    assert sources_in(after) == {"datto", "cloudally"}, "backupify's series are gone"
    assert not [key for key in samples(after) if ("source", "backupify") in key[1]]
    assert value(after, "saas_backup_up", source="cloudally") == 1, "crawled at once"
    assert running.calls("datto") == datto_calls, "datto's cache is kept: no vendor call"
    assert running.app.state.live.runner("datto") is runner, "and so is its crawl"
    assert series(after, "saas_backup_api_requests_total", source="datto") == requests
    assert value(after, RELOADED) == 1
    assert value(after, RELOADED_AT) >= value(before, RELOADED_AT)


def test_a_changed_source_restarts_from_the_state_file(running: Running, tmp_path: Path) -> None:
    state_file = tmp_path / "state.db"
    running.write(
        datto_source(running.sim_url), backupify_source(running.sim_url), state_file=str(state_file)
    )
    running.start()
    before = running.scrape()
    customers = series(before, "saas_backup_customer_info", source="datto")
    assert customers
    old = running.app.state.live.runner("datto")

    # A new key for datto; its vendor now hangs, so only the state file can hold its data.
    changed = datto_source(running.sim_url, timeout_seconds=2, refresh_timeout_seconds=3)
    running.sim.set_faults([parse_fault("hang@domains")])
    running.write(changed, state_file=str(state_file))
    assert running.reload().status_code == 200
    new = running.app.state.live.runner("datto")
    assert new is not old
    after = running.scrape()
    assert sources_in(after) == {"datto"}
    assert series(after, "saas_backup_customer_info", source="datto") == customers
    state = StateFile(state_file)
    try:
        settings = load_config(running.config_file).sources[0]
        assert state.load("datto", fingerprint(settings)) is not None
        backupify = backupify_source(running.sim_url)
        assert state.load("backupify", fingerprint_of(backupify)) is None, "pruned"
    finally:
        state.close()


def fingerprint_of(source: dict[str, Any]) -> str:
    return fingerprint(build_config({"sources": [source]}).sources[0])


def test_an_invalid_config_is_refused_and_the_old_one_runs_on(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    datto = datto_source(running.sim_url)
    running.write(datto)
    running.start()
    before = running.scrape()
    started_at = value(before, RELOADED_AT)

    # A secret under a misspelt key, another beside an invalid setting: neither may show.
    bad_datto = {**datto, "private_kee": CANARIES[0]}
    bad_cloudally = cloudally_source(
        running.sim_url, client_secret=CANARIES[1], max_concurrency=999
    )
    running.write(bad_datto, bad_cloudally)
    with caplog.at_level(logging.INFO):
        reply = running.reload()
    assert reply.status_code == 500
    assert reply.text.startswith("failed to reload config: ")
    assert "private_kee" in reply.text
    assert "max_concurrency" in reply.text
    after = running.scrape()
    assert value(after, RELOADED) == 0
    assert value(after, RELOADED_AT) == started_at, "the last success is kept"
    assert sources_in(after) == {"datto"}
    assert value(after, "saas_backup_up", source="datto") == 1
    errors = [r for r in caplog.records if r.name == "exporter.reload" and r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "max_concurrency" in errors[0].getMessage()
    page = httpx.get(running.url + "/", timeout=10).text
    for text in (reply.text, after, caplog.text, page):
        for canary in CANARIES:
            assert canary not in text

    running.write(datto)
    assert running.reload().status_code == 200
    fixed = running.scrape()
    assert value(fixed, RELOADED) == 1
    assert value(fixed, RELOADED_AT) > started_at


def test_a_reload_swaps_basic_auth_and_the_certificate_for_new_connections(
    running: Running, tmp_path: Path
) -> None:
    certs = make_certs(tmp_path)
    web_file = tmp_path / "web.yml"

    def web(user: str, cert: str, hashed: bool = True) -> None:
        password = bcrypt.hashpw(b"secret-" + user.encode(), bcrypt.gensalt(4)).decode()
        web_file.write_text(
            yaml.safe_dump(
                {
                    "tls_server_config": {
                        "cert_file": str(certs.path(f"{cert}.pem")),
                        "key_file": str(certs.path(f"{cert}.key")),
                    },
                    "basic_auth_users": {user: password if hashed else "not-a-hash"},
                }
            )
        )

    web("alice", "server")
    running.write(datto_source(running.sim_url), warm_up=False)
    # Checked on reload only, never on its own: what follows is the reload's doing.
    live = LiveWebConfig(load_web_config(web_file), every=3600)
    running.start(web=live)
    assert running.server is not None
    port = running.server.port
    url = f"https://127.0.0.1:{port}"
    trust = certs.client()

    def get(user: str, path: str = "/-/healthy") -> httpx.Response:
        auth = (user, f"secret-{user}")
        with httpx.Client(verify=trust, auth=auth, timeout=10) as client:
            return client.get(url + path)

    def served_cert() -> bytes:
        context = ssl.create_default_context(cafile=str(certs.path("ca.pem")))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            der = sock.getpeercert(binary_form=True)
        assert der is not None
        return der

    assert get("alice").status_code == 200
    first = served_cert()
    web("bob", "server2")
    with httpx.Client(verify=trust, auth=("alice", "secret-alice"), timeout=10) as client:
        assert client.post(url + "/-/reload").status_code == 200
    assert get("alice").status_code == 401
    assert get("bob").status_code == 200
    assert served_cert() != first, "new connections get the new certificate"

    web("carol", "server", hashed=False)
    with httpx.Client(verify=trust, auth=("bob", "secret-bob"), timeout=10) as client:
        refused = client.post(url + "/-/reload")
        assert refused.status_code == 500
        assert "web config: basic_auth_users" in refused.text
        body = client.get(url + "/metrics").text
    assert value(body, RELOADED) == 0
    assert get("bob").status_code == 200, "the web config in force stays"


def test_a_reload_never_makes_a_ready_exporter_unready(running: Running) -> None:
    running.write(datto_source(running.sim_url))
    running.start()
    running.scrape()
    assert httpx.get(running.url + "/-/ready", timeout=10).status_code == 200
    # The added source's vendor hangs: its first crawl cannot end.
    running.sim.set_faults([parse_fault("hang@auth")])
    slow = cloudally_source(running.sim_url, timeout_seconds=30)
    running.write(datto_source(running.sim_url), slow)
    assert running.reload().status_code == 200
    assert running.app.state.live.scheduler.waiting() == ["cloudally"]
    assert httpx.get(running.url + "/-/ready", timeout=10).status_code == 200
    probe = httpx.get(
        running.url + "/probe?target=cloudally",
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"},
        timeout=10,
    )
    assert value(probe.text, "saas_backup_up", source="cloudally") == 0


def test_a_reload_of_the_metrics_settings_keeps_every_source(running: Running) -> None:
    datto = datto_source(running.sim_url)
    running.write(datto)
    running.start()
    assert series(running.scrape(), "saas_backup_seat_info", source="datto")
    calls = running.calls("datto")
    running.config_file.write_text(
        yaml.safe_dump(
            {
                "cache": {"ttl_seconds": 600},
                "metrics": {"per_seat_series": False},
                "sources": [datto],
            }
        )
    )
    runner = running.app.state.live.runner("datto")
    assert running.reload().status_code == 200
    body = running.scrape()
    assert not series(body, "saas_backup_seat_info", source="datto")
    assert series(body, "saas_backup_seats", source="datto")
    assert running.app.state.live.runner("datto") is runner
    assert running.calls("datto") == calls

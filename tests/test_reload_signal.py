"""SIGHUP to the real command (`python -m exporter --config.file ...`) against the simulator:
it reloads, keeping the unchanged source's cache; an invalid file is refused, logged without
its secrets, and the old config runs on. Without --web.enable-lifecycle, POST /-/reload is 403."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.simulator.app import Simulator
from tests.conftest import (
    ServerThread,
    backupify_source,
    cloudally_source,
    datto_source,
    free_port,
    series,
    value,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent
CANARY = "canary-sighup-secret-7be3a910"


def write(path: Path, *sources: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"cache": {"ttl_seconds": 600}, "sources": list(sources)}))


def test_sighup_reloads_the_running_exporter(tmp_path: Path) -> None:
    sim = Simulator(customers=4, seats_per_customer=5, seed=3, token_ttl=3600)
    config_file = tmp_path / "config.yml"
    log_file = tmp_path / "exporter.log"
    with ServerThread(sim.app()) as sim_server, log_file.open("wb") as log:
        datto = datto_source(sim_server.url)
        write(config_file, datto, backupify_source(sim_server.url))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "exporter", "--config.file", str(config_file)]
        command += ["--web.listen-address", f"127.0.0.1:{port}"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        try:
            wait_for(url + "/-/ready", "Ready")
            before = wait_for(url + "/metrics", 'saas_backup_up{source="backupify"} 1.0').text
            refused = httpx.post(url + "/-/reload", timeout=10)
            assert (refused.status_code, refused.text) == (403, "Lifecycle API is not enabled.\n")
            requests = series(before, "saas_backup_api_requests_total", source="datto")
            assert requests

            write(config_file, datto, cloudally_source(sim_server.url))
            process.send_signal(signal.SIGHUP)
            after = wait_for(url + "/metrics", 'saas_backup_up{source="cloudally"} 1.0').text
            assert 'source="backupify"' not in after
            assert series(after, "saas_backup_api_requests_total", source="datto") == requests, (
                "datto kept its cache: not one more vendor request"
            )
            assert value(after, "saas_backup_config_last_reload_successful") == 1
            reloaded_at = value(after, "saas_backup_config_last_reload_success_timestamp_seconds")
            assert reloaded_at > value(
                before, "saas_backup_config_last_reload_success_timestamp_seconds"
            )

            bad = cloudally_source(sim_server.url, client_secret=CANARY, max_concurrency=999)
            write(config_file, datto, bad)
            process.send_signal(signal.SIGHUP)
            failed = wait_for(url + "/metrics", "saas_backup_config_last_reload_successful 0.0")
            body = failed.text
            assert value(body, "saas_backup_up", source="cloudally") == 1, "the old config runs on"
            assert (
                value(body, "saas_backup_config_last_reload_success_timestamp_seconds")
                == reloaded_at
            )
            page = httpx.get(url + "/", timeout=10).text
            assert CANARY not in body
            assert CANARY not in page
        finally:
            process.terminate()
            process.wait(15)
    logged = log_file.read_text()
    assert 'msg="config reloaded"' in logged
    assert 'msg="config not reloaded; the one in force stays"' in logged
    assert "max_concurrency" in logged
    assert CANARY not in logged

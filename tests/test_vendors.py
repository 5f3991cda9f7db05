"""Backupify v1 and CloudAlly over real sockets: tokens, pagination guards, jobs over time."""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exporter import logs
from exporter.app import build_app
from exporter.config import build_config
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.vendors.backupify.settings import BackupifySettings
from exporter.vendors.backupify.simulator import BackupifySim
from exporter.vendors.backupify.source import BackupifySource
from exporter.vendors.cloudally.settings import CloudAllySettings
from exporter.vendors.cloudally.simulator import CloudAllySim, Job
from exporter.vendors.cloudally.source import CloudAllySource
from tests.conftest import ServerThread, series, value

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


def test_backupify_running_and_finished_backups(sim_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = sim_server
    app = exporter_for(backupify_source(server.url))
    with ServerThread(app) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="backupify") == 1
    instances = sim.part(BackupifySim).fleet.instances
    assert len(series(body, "saas_backup_backup_instance_info")) == len(instances)
    stuck = instances[0]
    assert stuck.stuck_since is not None
    started = value(
        body, "saas_backup_active_backup_start_timestamp_seconds", instance_id=str(stuck.id)
    )
    assert started == pytest.approx(stuck.stuck_since, abs=1)
    assert time.time() - started > 19 * 3600, "a backup running for many hours"
    finished = series(body, "saas_backup_last_backup_end_timestamp_seconds")
    assert len(finished) == len(instances)
    statuses = {labels["instance_id"]: labels["status"] for labels, _ in finished}
    assert statuses[str(instances[1].id)] == "unknown", "undocumented 'verifying'"
    assert statuses[str(instances[2].id)] == "failed"
    assert set(statuses.values()) <= {"success", "partial", "failed", "unknown"}
    # 45 backups per instance, 20 a page: only the first and the last page are read.
    assert sim.calls["backupify.backups"] == 2 * len(instances)
    assert sim.calls["backupify.token"] == 1
    names = {
        labels["customer_name"]
        for labels, _ in series(body, "saas_backup_customer_info", source="backupify")
    }
    assert instances[0].customer_name in names


def test_one_token_request_for_twenty_concurrent_callers(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    sim.part(BackupifySim).tokens.ttl = sim.part(CloudAllySim).tokens.ttl = 0.5
    backupify = BackupifySource(
        BackupifySettings.model_validate(backupify_source(server.url, token_margin_seconds=0))
    )
    cloudally = CloudAllySource(
        CloudAllySettings.model_validate(cloudally_source(server.url, token_margin_seconds=0))
    )
    instance_ids = [str(i.id) for i in sim.part(BackupifySim).fleet.instances]

    async def scenario() -> None:
        await backupify.tokens.get()
        await cloudally.tokens.get()
        await asyncio.sleep(0.6)  # both tokens are now expired
        await asyncio.gather(
            *(backupify._load_active(instance_ids[n % len(instance_ids)]) for n in range(20)),
            *(cloudally._load_jobs() for _ in range(20)),
        )
        await backupify.aclose()
        await cloudally.aclose()

    asyncio.run(scenario())
    assert sim.calls["backupify.token"] == 2, "one at start, one for all twenty callers"
    assert sim.calls["cloudally.auth"] + sim.calls["cloudally.refresh"] == 2
    assert sim.calls["cloudally.refresh"] == 1, "the second token came from the refresh token"


def test_a_401_right_after_a_token_refresh_fails_cleanly(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    sim.set_faults([parse_fault("401@instances"), parse_fault("401@backup_tasks")])
    app = exporter_for(backupify_source(server.url), cloudally_source(server.url))
    with ServerThread(app) as exporter:
        body = scrape(exporter)
        page = httpx.get(exporter.url + "/", timeout=5).text
    assert value(body, "saas_backup_up", source="backupify") == 0
    assert value(body, "saas_backup_up", source="cloudally") == 0
    # First token, the refused call, one new token, one retry, and no more.
    assert sim.calls["backupify.token"] == 2
    assert sim.calls["backupify.instances"] == 2
    assert sim.calls["cloudally.auth"] + sim.calls["cloudally.refresh"] == 2
    assert sim.calls["cloudally.backup_tasks"] == 2
    assert "HTTP 401" in page


def test_link_cycle_stops(sim_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = sim_server
    sim.set_faults([parse_fault("link_cycle@instances"), parse_fault("link_cycle@backup_tasks")])
    app = exporter_for(backupify_source(server.url), cloudally_source(server.url, page_size=5))
    with ServerThread(app) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert value(body, "saas_backup_up", source="cloudally") == 1
    assert len(series(body, "saas_backup_backup_instance_info")) == len(
        sim.part(BackupifySim).fleet.instances
    )
    tasks = len(sim.part(CloudAllySim).fleet.tasks)
    assert sim.calls["cloudally.backup_tasks"] == math.ceil(tasks / 5) + 1
    assert value(body, "saas_backup_parse_errors_total", source="backupify") >= 1
    assert value(body, "saas_backup_parse_errors_total", source="cloudally") >= 1


def test_cross_origin_next_link_never_gets_the_token(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    foreign = Simulator(customers=1, seats_per_customer=1, seed=1)
    stream = io.StringIO()
    logs.setup("info", "logfmt", stream=stream)
    with ServerThread(foreign.app()) as elsewhere:
        sim.set_faults([parse_fault(f"cross_origin@instances?origin={elsewhere.url}")])
        app = exporter_for(backupify_source(server.url))
        with ServerThread(app) as exporter:
            body = scrape(exporter)
    assert foreign.requests == [], "nothing at all reached the other origin"
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert "refused a pagination link to another origin" in stream.getvalue()


def test_terminal_restore_jobs_are_never_fetched_again(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    app = exporter_for(cloudally_source(server.url), ttl=0.2)
    with ServerThread(app) as exporter:
        body = scrape(exporter)
        terminal = {
            labels["job_id"]
            for labels, _ in series(body, "saas_backup_restore_job_start_timestamp_seconds")
            if labels["status"] in {"success", "failed"}
        }
        assert terminal == {"rst-1001", "rst-1003"}
        for _ in range(5):
            time.sleep(0.25)
            body = scrape(exporter)
    paths = [r.path for r in sim.requests]
    for job_id in terminal:
        assert paths.count(f"/v1/restore/{job_id}") == 1
    assert paths.count("/v1/partners/tasks") >= 5, "the refreshes really happened"
    assert paths.count("/v1/restore/rst-1004") >= 5, "a running job is still followed"
    assert value(body, "saas_backup_restore_jobs", type="restore", status="failed") == 1


def test_restore_jobs_progress_and_the_window(sim_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = sim_server
    now = time.time()
    sim.part(CloudAllySim).fleet.jobs.append(
        Job("rst-7777", "acc-9001", "RESTORE", now, 0.6, 0.6, "failed")
    )
    app = exporter_for(cloudally_source(server.url), ttl=0.2)
    seen: list[str] = []
    with ServerThread(app) as exporter:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            body = scrape(exporter)
            for labels, _ in series(
                body, "saas_backup_restore_job_start_timestamp_seconds", job_id="rst-7777"
            ):
                if not seen or seen[-1] != labels["status"]:
                    seen.append(labels["status"])
            if seen and seen[-1] == "failed":
                break
            time.sleep(0.25)
    assert seen[0] == "pending"
    assert seen[-1] == "failed"
    assert "running" in seen
    jobs = {
        labels["job_id"]
        for labels, _ in series(body, "saas_backup_restore_job_start_timestamp_seconds")
    }
    assert "rst-0999" not in jobs, "ten days old: outside the 7-day window"
    assert "act-2001" not in jobs, "not a restore or download"
    stuck = value(body, "saas_backup_restore_job_start_timestamp_seconds", job_id="rst-1004")
    assert time.time() - stuck > 24 * 3600


def test_cloudally_tasks_map_to_applications_with_unknown_statuses(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    app = exporter_for(
        cloudally_source(
            server.url, auth_style="headers", email="ops@example.com", password="pw-secret-1"
        ),
    )
    with ServerThread(app) as exporter:
        body = scrape(exporter)
    statuses = series(body, "saas_backup_application_last_backup_status", source="cloudally")
    assert len(statuses) == len(sim.part(CloudAllySim).fleet.tasks)
    words = {labels["status"] for labels, _ in statuses}
    assert {"success", "failed", "running", "paused", "unknown"} <= words
    login = next(r for r in sim.requests if r.path == "/auth/partner")
    assert login.headers["client-id"] == "demo-client"
    assert len(series(body, "saas_backup_customer_info", source="cloudally")) == len(
        {t.customer_id for t in sim.part(CloudAllySim).fleet.tasks}
    )


def test_cloudally_falls_back_to_login_when_refresh_fails() -> None:
    sim = Simulator(customers=4, seats_per_customer=2, seed=5, token_ttl=0.3)
    sim.set_faults([parse_fault("401@refresh")])
    with ServerThread(sim.app()) as server:
        source = CloudAllySource(
            CloudAllySettings.model_validate(cloudally_source(server.url, token_margin_seconds=0))
        )

        async def scenario() -> None:
            await source._load_jobs()
            await asyncio.sleep(0.4)
            await source._load_jobs()
            await source.aclose()

        asyncio.run(scenario())
    assert sim.calls["cloudally.refresh"] == 1
    assert sim.calls["cloudally.auth"] == 2


def test_link_pagination_stops_at_the_page_limit(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    source = BackupifySource(BackupifySettings.model_validate(backupify_source(server.url)))
    instance = sim.part(BackupifySim).fleet.instances[1].id

    async def scenario() -> list[Any]:
        try:
            return await source._client.get_linked(
                "backups",
                f"/v1/backup_instances/{instance}/backups",
                None,
                max_pages=2,
                items_key="backups",
            )
        finally:
            await source.aclose()

    items = asyncio.run(scenario())
    assert len(items) == 40, "two pages of twenty; the third is never asked for"
    assert sim.calls["backupify.backups"] == 2

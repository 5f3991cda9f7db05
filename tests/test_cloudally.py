"""CloudAlly over real sockets: tokens, page-token pagination, restore jobs over time."""

from __future__ import annotations

import asyncio
import math
import time

import httpx

from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.vendors.cloudally.settings import CloudAllySettings
from exporter.vendors.cloudally.simulator import CloudAllySim, Job
from exporter.vendors.cloudally.source import CloudAllySource
from tests.conftest import (
    ServerThread,
    cloudally_source,
    exporter_for,
    scrape,
    series,
    value,
)


def test_one_token_request_for_twenty_concurrent_callers(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    sim.part(CloudAllySim).tokens.ttl = 0.5
    cloudally = CloudAllySource(
        CloudAllySettings.model_validate(cloudally_source(server.url, token_margin_seconds=0))
    )

    async def scenario() -> None:
        await cloudally.tokens.get()
        await asyncio.sleep(0.6)  # the token is now expired
        await asyncio.gather(*(cloudally._load_jobs() for _ in range(20)))
        await cloudally.aclose()

    asyncio.run(scenario())
    assert sim.calls["cloudally.auth"] + sim.calls["cloudally.refresh"] == 2
    assert sim.calls["cloudally.refresh"] == 1, "the second token came from the refresh token"


def test_a_401_right_after_a_token_refresh_fails_cleanly(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    sim.set_faults([parse_fault("401@backup_tasks")])
    app = exporter_for(cloudally_source(server.url))
    with ServerThread(app) as exporter:
        body = scrape(exporter)
        page = httpx.get(exporter.url + "/", timeout=5).text
    assert value(body, "saas_backup_up", source="cloudally") == 0
    # First token, the refused call, one new token, one retry, and no more.
    assert sim.calls["cloudally.auth"] + sim.calls["cloudally.refresh"] == 2
    assert sim.calls["cloudally.backup_tasks"] == 2
    assert "HTTP 401" in page


def test_link_cycle_stops(sim_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = sim_server
    sim.set_faults([parse_fault("link_cycle@backup_tasks")])
    app = exporter_for(cloudally_source(server.url, page_size=5))
    with ServerThread(app) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="cloudally") == 1
    tasks = len(sim.part(CloudAllySim).fleet.tasks)
    assert sim.calls["cloudally.backup_tasks"] == math.ceil(tasks / 5) + 1
    assert value(body, "saas_backup_parse_errors_total", source="cloudally") >= 1


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

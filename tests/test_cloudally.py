"""CloudAlly over real sockets: tokens, page-token pagination, restore jobs over time, and the
spec's shape (the live API's shape: test_cloudally_live.py)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import httpx
import pytest

from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.world import Shape
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


@pytest.fixture
def spec_server() -> Iterator[tuple[Simulator, ServerThread]]:
    sim = Simulator(customers=6, seats_per_customer=5, seed=3, token_ttl=3600, shape="spec")
    with ServerThread(sim.app()) as server:
        yield sim, server


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
        await asyncio.gather(*(cloudally._load_partner_tasks() for _ in range(20)))
        await cloudally.aclose()

    asyncio.run(scenario())
    assert sim.calls["cloudally.auth"] + sim.calls["cloudally.refresh"] == 2
    assert sim.calls["cloudally.refresh"] == 1, "the second token came from the refresh token"


def test_a_401_right_after_a_token_refresh_fails_cleanly(
    spec_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = spec_server
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


@pytest.mark.parametrize("shape", ["spec", "live"])
def test_a_page_token_cycle_stops_without_reading_a_page_twice(shape: Shape) -> None:
    sim = Simulator(customers=6, seats_per_customer=5, seed=3, shape=shape)
    route = "backup_tasks" if shape == "spec" else "partner_tasks"
    sim.set_faults([parse_fault(f"link_cycle@{route}")])
    fleet = sim.part(CloudAllySim).fleet
    listed = len(fleet.tasks) + (len(fleet.jobs) if shape == "live" else 0)
    pages = math.ceil(listed / 3)
    assert pages >= 3
    auth = {"auth_style": "headers", "email": "ops@example.com", "password": "pw-1"}
    with (
        ServerThread(sim.app()) as server,
        ServerThread(exporter_for(cloudally_source(server.url, page_size=3, **auth))) as exporter,
    ):
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="cloudally") == 1
    # Pages 1 .. n-1, whose last token leads back to page 1: that page is not read again.
    assert sim.calls[f"cloudally.{route}"] == pages
    assert value(body, "saas_backup_parse_errors_total", source="cloudally") >= 1
    read = (pages - 1) * 3
    apps = series(body, "saas_backup_application_last_backup_status", source="cloudally")
    assert len(apps) == min(read, len(fleet.tasks)), "no task counted twice"


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
    app = exporter_for(cloudally_source(server.url), ttl=0.2)
    seen: list[str] = []
    with ServerThread(app) as exporter:
        # Created once the exporter is up, and slow enough for a loaded machine to see each
        # state.
        sim.part(CloudAllySim).fleet.jobs.append(
            Job("rst-7777", "acc-9001", "RESTORE", time.time(), 1.0, 1.0, "failed")
        )
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


def test_spec_tasks_map_to_applications_with_unknown_statuses(
    spec_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = spec_server
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
            await source._load_partner_tasks()
            await asyncio.sleep(0.4)
            await source._load_partner_tasks()
            await source.aclose()

        asyncio.run(scenario())
    assert sim.calls["cloudally.refresh"] == 1
    assert sim.calls["cloudally.auth"] == 2


def test_the_spec_shape_reads_backup_tasks_from_their_own_listing(
    spec_server: tuple[Simulator, ServerThread],
) -> None:
    """/v1/partners/tasks lists no backup task in the spec's shape: the spec listing is read,
    /v1/partners/status is not needed, and the spec's words keep their meaning."""
    sim, server = spec_server
    tasks = sim.part(CloudAllySim).fleet.tasks
    with ServerThread(exporter_for(cloudally_source(server.url, page_size=4))) as exporter:
        body = scrape(exporter)
    paths = [r.path for r in sim.requests if r.path.startswith("/v1/")]
    assert paths.index("/v1/partners/tasks") < paths.index("/v1/backup-tasks")
    assert paths.count("/v1/backup-tasks") == math.ceil(len(tasks) / 4)
    assert "/v1/partners/status" not in paths
    apps = {
        labels["application"]: labels["status"]
        for labels, _ in series(
            body, "saas_backup_application_last_backup_status", customer_id="acc-9002"
        )
    }
    assert set(apps) == {"ms_exchange", "ms_onedrive", "ms_sharepoint", "ms_teams"}
    paused = next(t for t in tasks if t.status == "paused")
    assert value(body, "saas_backup_application_enabled", customer_id=paused.customer_id) == 0, (
        "the spec's `paused` switches the task off; its other words say nothing of that"
    )
    assert value(body, "saas_backup_restore_jobs", type="restore", status="failed") == 1

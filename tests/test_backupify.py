"""Backupify v1 over real sockets: tokens, Link pagination guards, backups over time."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import httpx
import pytest

from exporter import logs
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.vendors.backupify.settings import BackupifySettings
from exporter.vendors.backupify.simulator import BackupifySim
from exporter.vendors.backupify.source import BackupifySource
from tests.conftest import (
    ServerThread,
    backupify_source,
    exporter_for,
    scrape,
    series,
    value,
)


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
    sim.part(BackupifySim).tokens.ttl = 0.5
    backupify = BackupifySource(
        BackupifySettings.model_validate(backupify_source(server.url, token_margin_seconds=0))
    )
    instance_ids = [str(i.id) for i in sim.part(BackupifySim).fleet.instances]

    async def scenario() -> None:
        await backupify.tokens.get()
        await asyncio.sleep(0.6)  # the token is now expired
        await asyncio.gather(
            *(backupify._load_active(instance_ids[n % len(instance_ids)]) for n in range(20))
        )
        await backupify.aclose()

    asyncio.run(scenario())
    assert sim.calls["backupify.token"] == 2, "one at start, one for all twenty callers"


def test_a_401_right_after_a_token_refresh_fails_cleanly(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = sim_server
    sim.set_faults([parse_fault("401@instances")])
    app = exporter_for(backupify_source(server.url))
    with ServerThread(app) as exporter:
        body = scrape(exporter)
        page = httpx.get(exporter.url + "/", timeout=5).text
    assert value(body, "saas_backup_up", source="backupify") == 0
    # First token, the refused call, one new token, one retry, and no more.
    assert sim.calls["backupify.token"] == 2
    assert sim.calls["backupify.instances"] == 2
    assert "HTTP 401" in page


def test_link_cycle_stops(sim_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = sim_server
    sim.set_faults([parse_fault("link_cycle@instances")])
    app = exporter_for(backupify_source(server.url))
    with ServerThread(app) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert len(series(body, "saas_backup_backup_instance_info")) == len(
        sim.part(BackupifySim).fleet.instances
    )
    assert value(body, "saas_backup_parse_errors_total", source="backupify") >= 1


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

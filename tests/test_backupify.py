"""Backupify v1 over real sockets, in the spec shape (no /v1/customers: the definition path), and
what holds in every shape: tokens, Link pagination guards, backups over time."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from exporter import logs
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.world import Shape
from exporter.vendors.backupify.settings import BackupifySettings
from exporter.vendors.backupify.simfleet import FOREIGN_DEFINITION, running
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


@contextmanager
def simulated(shape: Shape, customers: int = 6, **options: Any) -> Iterator[tuple[Simulator, str]]:
    """A simulator of the given shape on a loopback socket, and its URL."""
    sim = Simulator(customers=customers, seats_per_customer=2, seed=3, shape=shape, **options)
    with ServerThread(sim.app()) as server:
        yield sim, server.url


@pytest.fixture
def spec_sim() -> Iterator[tuple[Simulator, str]]:
    with simulated("spec", token_ttl=3600) as running:
        yield running


def test_spec_shape_running_and_finished_backups(spec_sim: tuple[Simulator, str]) -> None:
    sim, url = spec_sim
    with ServerThread(exporter_for(backupify_source(url))) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="backupify") == 1
    instances = sim.part(BackupifySim).fleet.instances
    infos = series(body, "saas_backup_backup_instance_info")
    assert len(infos) == len(instances)
    # The spec shape's instances carry their own names.
    assert {labels["instance_name"] for labels, _ in infos} == {i.name for i in instances}
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
    # 45 backups per instance (fewer for the stale one), 20 a page: the first and last pages.
    assert sim.calls["backupify.backups"] == 2 * len(instances)
    assert sim.calls["backupify.token"] == 1
    names = {
        labels["customer_name"]
        for labels, _ in series(body, "saas_backup_customer_info", source="backupify")
    }
    assert {i.customer_name for i in instances} == names
    # No frequency in the spec shape: nothing to judge staleness against.
    assert series(body, "saas_backup_instance_backup_interval_seconds") == []


def test_without_customers_the_definition_listing_is_read(
    spec_sim: tuple[Simulator, str],
) -> None:
    """The spec shape has no /v1/customers; its 404 sends the source down the definition path,
    where another vendor's definition (listed too) answers 404 for its instances."""
    sim, url = spec_sim
    with ServerThread(exporter_for(backupify_source(url))) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert sim.calls["backupify.customers"] == 1
    assert sim.calls["backupify.definitions"] == 1
    foreign = [
        r for r in sim.requests if r.query == f"backup_definition_id={FOREIGN_DEFINITION[0]}"
    ]
    assert [r.status for r in foreign] == [404], "asked once, and it answered 404"
    assert all(v == 1 for _, v in series(body, "saas_backup_customer_up", source="backupify"))
    assert value(body, "saas_backup_parse_errors_total", source="backupify") == 0
    assert len(series(body, "saas_backup_backup_instance_info")) == len(
        sim.part(BackupifySim).fleet.instances
    )
    assert not [r for r in sim.requests if r.path == "/v1/vendors/me"]


def test_configured_definitions_limit_the_instances(spec_sim: tuple[Simulator, str]) -> None:
    sim, url = spec_sim
    foreign = str(FOREIGN_DEFINITION[0])
    source = backupify_source(url, backup_definition_ids=["2", foreign])
    with ServerThread(exporter_for(source)) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert sim.calls["backupify.definitions"] == 0, "the listing is not needed"
    infos = series(body, "saas_backup_backup_instance_info")
    wanted = [i for i in sim.part(BackupifySim).fleet.instances if i.definition_id == 2]
    assert {labels["instance_id"] for labels, _ in infos} == {str(i.id) for i in wanted}
    # Configured ids come without names: /v1/backup_definitions/{id} names them.
    assert {labels["definition"] for labels, _ in infos} == {"Office 365"}


def test_one_token_request_for_twenty_concurrent_callers(
    spec_sim: tuple[Simulator, str],
) -> None:
    sim, url = spec_sim
    sim.part(BackupifySim).tokens.ttl = 0.5
    backupify = BackupifySource(
        BackupifySettings.model_validate(backupify_source(url, token_margin_seconds=0))
    )
    instance_ids = [str(i.id) for i in sim.part(BackupifySim).fleet.instances]

    async def scenario() -> None:
        await backupify.tokens.get()
        await asyncio.sleep(0.6)  # the token is now expired
        await asyncio.gather(
            *(backupify.api.active(instance_ids[n % len(instance_ids)]) for n in range(20))
        )
        await backupify.aclose()

    asyncio.run(scenario())
    assert sim.calls["backupify.token"] == 2, "one at start, one for all twenty callers"


def test_a_401_right_after_a_token_refresh_fails_cleanly(
    spec_sim: tuple[Simulator, str],
) -> None:
    sim, url = spec_sim
    sim.set_faults([parse_fault("401@instances")])
    with ServerThread(exporter_for(backupify_source(url))) as exporter:
        body = scrape(exporter)
        page = httpx.get(exporter.url + "/", timeout=5).text
    assert value(body, "saas_backup_up", source="backupify") == 0
    # First token, the refused call, one new token, one retry, and no more.
    assert sim.calls["backupify.token"] == 2
    assert sim.calls["backupify.instances"] == 2
    assert "HTTP 401" in page


# The list each shape's source pages through first: instances (spec) or customers (live).
PAGED = [("spec", "instances"), ("live", "customers")]


@pytest.mark.parametrize(("shape", "route"), PAGED)
def test_link_cycle_stops(shape: Shape, route: str) -> None:
    with simulated(shape) as (sim, url):
        sim.set_faults([parse_fault(f"link_cycle@{route}")])
        with ServerThread(exporter_for(backupify_source(url))) as exporter:
            body = scrape(exporter)
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert len(series(body, "saas_backup_backup_instance_info")) == len(
        sim.part(BackupifySim).fleet.instances
    )
    assert value(body, "saas_backup_parse_errors_total", source="backupify") >= 1


@pytest.mark.parametrize(("shape", "route"), PAGED)
def test_cross_origin_next_link_never_gets_the_token(shape: Shape, route: str) -> None:
    foreign = Simulator(customers=1, seats_per_customer=1, seed=1)
    stream = io.StringIO()
    logs.setup("info", "logfmt", stream=stream)
    with simulated(shape) as (sim, url), ServerThread(foreign.app()) as elsewhere:
        sim.set_faults([parse_fault(f"cross_origin@{route}?origin={elsewhere.url}")])
        with ServerThread(exporter_for(backupify_source(url))) as exporter:
            body = scrape(exporter)
    assert foreign.requests == [], "nothing at all reached the other origin"
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert "refused a pagination link to another origin" in stream.getvalue()


def test_link_pagination_stops_at_the_page_limit(spec_sim: tuple[Simulator, str]) -> None:
    sim, url = spec_sim
    source = BackupifySource(BackupifySettings.model_validate(backupify_source(url)))
    instance = sim.part(BackupifySim).fleet.instances[1].id

    async def scenario() -> list[Any]:
        try:
            return await source.api.client.get_linked(
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


@pytest.mark.parametrize("shape", ["spec", "live"])
def test_active_answers_204_when_nothing_runs_in_every_shape(shape: Shape) -> None:
    with simulated(shape) as (sim, url):
        token = httpx.post(
            url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "scope": "write",
            },
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}

        def active(instance_id: int) -> httpx.Response:
            path = f"/v1/backup_instances/{instance_id}/backups/active"
            return httpx.get(url + path, headers=auth)

        instances = sim.part(BackupifySim).fleet.instances
        idle = [i for i in instances if running(i, time.time()) is None]
        assert idle, "most instances are idle most of the time"
        quiet = active(idle[0].id)
        assert (quiet.status_code, quiet.content) == (204, b"")
        stuck = active(instances[0].id)
        assert stuck.status_code == 200
        assert stuck.json()["status"] == ("in_progress" if shape == "live" else "running")
        assert active(999_999).status_code == 404, "an unknown instance is an error, not 'none'"

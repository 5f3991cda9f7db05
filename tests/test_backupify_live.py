"""Backupify v1 in the swagger's (live) shape, over real sockets against the simulator: the token
quirks, names from customers and definitions, states, schedules, 204 and 404 on the active
backup, exports as restore jobs, and the secrets that must stay where they are."""

from __future__ import annotations

import io
import logging
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
from exporter.vendors.backupify.simfleet import DEFINITIONS, Instance, last_success, running
from exporter.vendors.backupify.simulator import BackupifySim
from tests.conftest import ServerThread, backupify_source, exporter_for, scrape, series, value
from tests.test_backupify import simulated

DAY = 86400.0
NAMES = dict(DEFINITIONS)
CANARY = "CANARY-export-link-4f2a9c"


@pytest.fixture
def live_sim() -> Iterator[tuple[Simulator, str]]:
    with simulated("live") as running_sim:
        yield running_sim


def token_form(**overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "scope": "write",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v}


def exporter_with(url: str, *, endpoints: dict[str, float] | None = None, **source: Any) -> Any:
    config = build_config(
        {
            "cache": {"ttl_seconds": 300, "warm_up": False, "endpoints": endpoints or {}},
            "sources": [backupify_source(url, **source)],
        }
    )
    return build_app(config)


def scrape_until(exporter: ServerThread, done: Any, timeout: float = 20) -> str:
    """Scrapes until ``done(body)`` holds (a refresh may still be on its way)."""
    deadline = time.monotonic() + timeout
    while True:
        body = scrape(exporter)
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def by_instance(body: str, name: str) -> dict[str, float]:
    return {labels["instance_id"]: v for labels, v in series(body, name, source="backupify")}


def test_the_token_request_needs_scope_write_and_answers_bearer_token(
    live_sim: tuple[Simulator, str],
) -> None:
    _, url = live_sim
    assert httpx.post(url + "/oauth/token", data=token_form(scope="")).status_code == 400
    assert httpx.post(url + "/oauth/token", data=token_form(scope="read")).status_code == 400
    good = httpx.post(url + "/oauth/token", data=token_form())
    assert good.status_code == 200
    assert good.json()["token_type"] == "bearer_token"
    assert isinstance(good.json()["expires_in"], int)


@pytest.mark.parametrize(("scope", "up"), [(None, 0), ("read", 0), ("write", 1)])
def test_the_source_sends_its_scope(
    live_sim: tuple[Simulator, str], scope: str | None, up: int
) -> None:
    """The default scope is write (the other tests use it); an explicit value is sent instead,
    and none at all is the swagger's 400."""
    sim, url = live_sim
    with ServerThread(exporter_for(backupify_source(url, scope=scope))) as exporter:
        body = scrape(exporter)
        page = httpx.get(exporter.url + "/", timeout=5).text
    assert value(body, "saas_backup_up", source="backupify") == up
    if not up:
        assert "HTTP 400" in page
        assert sim.calls["backupify.customers"] == 0


def test_live_shape_end_to_end(live_sim: tuple[Simulator, str]) -> None:
    sim, url = live_sim
    instances = sim.part(BackupifySim).fleet.instances
    before = time.time()
    with ServerThread(exporter_for(backupify_source(url))) as exporter:
        body = scrape(exporter)
    after = time.time()
    assert value(body, "saas_backup_up", source="backupify") == 1
    assert value(body, "saas_backup_parse_errors_total", source="backupify") == 0
    assert sim.calls["backupify.token"] == 1, "bearer_token was taken as a token"

    # Names: customers from /v1/customers, instances from their definitions.
    customers = {
        labels["customer_id"]: labels["customer_name"]
        for labels, _ in series(body, "saas_backup_customer_info", source="backupify")
    }
    assert customers == {str(i.customer_id): i.customer_name for i in instances}
    infos = series(body, "saas_backup_backup_instance_info", source="backupify")
    assert len(infos) == len(instances)
    for labels, _ in infos:
        inst = next(i for i in instances if str(i.id) == labels["instance_id"])
        assert labels["definition"] == labels["instance_name"] == NAMES[inst.definition_id]
    assert sim.calls["backupify.definition"] == len(DEFINITIONS), "each definition read once"
    # Our definitions come from our instances: the all-vendor listing is never needed.
    assert sim.calls["backupify.definitions"] == sim.calls["backupify.instances"] == 0
    assert sim.calls["backupify.vendors_me"] == 0
    assert not [r for r in sim.requests if r.path.startswith("/v1/vendors")]

    # States of the newest finished backups.
    statuses = {
        labels["instance_id"]: labels["status"]
        for labels, _ in series(body, "saas_backup_last_backup_end_timestamp_seconds")
    }
    assert statuses[str(instances[1].id)] == "unknown", "undocumented 'verifying'"
    assert statuses[str(instances[2].id)] == "failed"
    assert {statuses[str(i.id)] for i in instances[3:]} == {"success"}

    # Schedules: last success and interval; an instance switched off has no interval.
    last = by_instance(body, "saas_backup_instance_last_success_timestamp_seconds")
    for inst in instances:
        expected = {last_success(inst, before), last_success(inst, after)}
        # Offsets and milliseconds parsed: exact to the millisecond (seconds on odd ones).
        tolerance = 0.002 if inst.index % 2 == 0 else 1.0
        assert any(abs(last[str(inst.id)] - e) < tolerance for e in expected if e), inst.id
    intervals = by_instance(body, "saas_backup_instance_backup_interval_seconds")
    frequencies = {str(i.id): i.frequency for i in instances}
    assert intervals == {
        iid: {"daily": DAY, "weekly": 7 * DAY}[f] for iid, f in frequencies.items() if f != "off"
    }
    assert frequencies[str(instances[4].id)] == "off"
    stale = str(instances[3].id)
    assert time.time() - last[stale] > 2 * intervals[stale], "overdue: more than two intervals"

    # The stuck backup runs; idle instances answered 204, which is no series and no error.
    active = by_instance(body, "saas_backup_active_backup_start_timestamp_seconds")
    assert str(instances[0].id) in active
    idle = [i for i in instances if running(i, before) is None and running(i, after) is None]
    assert idle
    assert not {str(i.id) for i in idle} & set(active)
    answered = [r.status for r in sim.requests if r.path.endswith("/backups/active")]
    assert answered.count(204) >= len(idle)
    assert all(v == 1 for _, v in series(body, "saas_backup_customer_up", source="backupify"))


def test_exports_become_restore_jobs(live_sim: tuple[Simulator, str]) -> None:
    sim, url = live_sim
    failed = sim.part(BackupifySim).fleet.instances[1].failed_export
    assert failed is not None
    with ServerThread(exporter_for(backupify_source(url))) as exporter:
        body = scrape(exporter)
    job = {"job_id": str(failed.id), "type": "export"}
    assert value(body, "saas_backup_restore_job_end_timestamp_seconds", status="failed", **job)
    assert value(body, "saas_backup_restore_job_records_failed", **job) == 37
    assert value(body, "saas_backup_restore_job_records_processed", **job) == 1200
    assert value(body, "saas_backup_restore_jobs", type="export", status="failed") == 1
    assert value(body, "saas_backup_restore_jobs", type="export", status="cancelled") == 1
    types = {labels["type"] for labels, _ in series(body, "saas_backup_restore_jobs")}
    assert types == {"export"}
    # Every instance has an export from 12 days ago: outside the 7-day window.
    starts = series(body, "saas_backup_restore_job_start_timestamp_seconds")
    assert starts
    assert min(v for _, v in starts) > time.time() - 7 * DAY


def exports_read(sim: Simulator, inst: Instance) -> list[str]:
    path = f"/v1/backup_instances/{inst.id}/exports"
    return [r.query for r in sim.requests if r.path == path]


@pytest.mark.parametrize(("window_days", "pages"), [(7, ["", "page=3", "page=2"]), (30, None)])
def test_exports_are_read_from_the_tail_of_their_list(
    live_sim: tuple[Simulator, str], window_days: int, pages: list[str] | None
) -> None:
    """45 exports a day apart, 20 a page, ascending: the first page (for its `last` link), the
    last page, and earlier pages only while they are still inside the window."""
    sim, url = live_sim
    inst = sim.part(BackupifySim).fleet.instances[0]
    window = window_days * DAY
    source = exporter_for(backupify_source(url, restore_window_seconds=window))
    with ServerThread(source) as exporter:
        body = scrape(exporter)
    now = time.time()
    expected = {str(e.id) for e in inst.exports if e.started >= now - window}
    jobs = {
        labels["job_id"]
        for labels, _ in series(
            body,
            "saas_backup_restore_job_start_timestamp_seconds",
            customer_id=str(inst.customer_id),
        )
    }
    assert jobs == expected
    read = exports_read(sim, inst)
    if pages is not None:
        assert read == pages
    else:
        # Back at the first page by `prev`: it was read already and is not asked for again.
        assert read == ["", "page=3", "page=2"]
        assert len(expected) > 20, "the window reaches into the first page"


def test_a_404_on_the_active_backup_marks_only_that_customer_down(
    live_sim: tuple[Simulator, str],
) -> None:
    sim, url = live_sim
    fleet = sim.part(BackupifySim).fleet
    gone = fleet.instances[3]
    app = exporter_with(url, endpoints={"active_backup": 0.2})
    with ServerThread(app) as exporter:
        first = scrape(exporter)
        assert value(first, "saas_backup_customer_up", customer_id=str(gone.customer_id)) == 1
        # The vendor no longer knows the instance; the cached lists still name it.
        fleet.instances = [i for i in fleet.instances if i is not gone]

        def down(body: str) -> bool:
            found = series(body, "saas_backup_customer_up", customer_id=str(gone.customer_id))
            return [v for _, v in found] == [0]

        body = scrape_until(exporter, down)
    assert down(body), "the 404 is an error, not 'nothing runs'"
    assert value(body, "saas_backup_up", source="backupify") == 1
    others = [
        v
        for labels, v in series(body, "saas_backup_customer_up", source="backupify")
        if labels["customer_id"] != str(gone.customer_id)
    ]
    assert others
    assert all(v == 1 for v in others)
    # Its last good data stays.
    assert str(gone.id) in by_instance(body, "saas_backup_last_backup_end_timestamp_seconds")
    assert str(gone.id) in by_instance(body, "saas_backup_backup_instance_info")


def test_customers_are_link_paged() -> None:
    with (
        simulated("live", customers=50) as (sim, url),
        ServerThread(exporter_for(backupify_source(url))) as exporter,
    ):
        body = scrape(exporter)
    instances = sim.part(BackupifySim).fleet.instances
    assert len(instances) > 20
    listed = [r.query for r in sim.requests if r.path == "/v1/customers"]
    assert listed == ["", "page=2"]
    assert len(series(body, "saas_backup_customer_info", source="backupify")) == len(instances)


def test_configured_definitions_filter_instances_and_customers(
    live_sim: tuple[Simulator, str],
) -> None:
    sim, url = live_sim
    with ServerThread(exporter_for(backupify_source(url, backup_definition_ids=["2"]))) as exporter:
        body = scrape(exporter)
    wanted = [i for i in sim.part(BackupifySim).fleet.instances if i.definition_id == 2]
    infos = series(body, "saas_backup_backup_instance_info")
    assert {labels["instance_id"] for labels, _ in infos} == {str(i.id) for i in wanted}
    customers = series(body, "saas_backup_customer_info", source="backupify")
    assert {labels["customer_id"] for labels, _ in customers} == {
        str(i.customer_id) for i in wanted
    }
    assert sim.calls["backupify.definition"] == 1


def test_mixed_shape_reads_both_kinds_of_instance() -> None:
    with (
        simulated("mixed") as (sim, url),
        ServerThread(exporter_for(backupify_source(url))) as exporter,
    ):
        body = scrape(exporter)
    instances = sim.part(BackupifySim).fleet.instances
    assert {i.live for i in instances} == {True, False}
    assert value(body, "saas_backup_up", source="backupify") == 1
    names = {
        labels["instance_id"]: labels["instance_name"]
        for labels, _ in series(body, "saas_backup_backup_instance_info")
    }
    for inst in instances:
        # Spec-shaped instances bring their own names, live ones show their definition's.
        assert names[str(inst.id)] == (NAMES[inst.definition_id] if inst.live else inst.name)
    intervals = by_instance(body, "saas_backup_instance_backup_interval_seconds")
    assert set(intervals) == {str(i.id) for i in instances if i.live and i.frequency != "off"}
    statuses = {
        labels["instance_id"]: labels["status"]
        for labels, _ in series(body, "saas_backup_last_backup_end_timestamp_seconds")
    }
    assert statuses[str(instances[2].id)] == "failed"
    assert len(statuses) == len(instances)


def test_the_export_download_link_never_leaks() -> None:
    """exported_data_url is a bearer link to the customer's data."""
    stream = io.StringIO()
    logs.setup("debug", "logfmt", stream=stream)
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore").setLevel(logging.DEBUG)
    try:
        with simulated("live") as (sim, url):
            sim.part(BackupifySim).fleet.download_token = CANARY
            with ServerThread(exporter_for(backupify_source(url))) as exporter:
                body = scrape(exporter)
                page = httpx.get(exporter.url + "/", timeout=5).text
            token = httpx.post(url + "/oauth/token", data=token_form()).json()["access_token"]
            served = httpx.get(
                f"{url}/v1/backup_instances/{sim.part(BackupifySim).fleet.instances[1].id}/exports",
                headers={"Authorization": f"Bearer {token}"},
            ).text
    finally:
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)
    assert CANARY in served, "the simulator does serve the link"
    assert series(body, "saas_backup_restore_job_start_timestamp_seconds"), "exports were read"
    log_text = stream.getvalue()
    assert "crawled" in log_text, "the exporter's logs were captured"
    for where in (body, page, log_text):
        assert CANARY not in where
        assert "exports.backupify.example" not in where


def test_a_list_tail_on_another_origin_fails_that_customer_only(
    live_sim: tuple[Simulator, str],
) -> None:
    """Exports and backups are read from their `last` page: a `last` link to another origin is
    refused (it would get the token), and the instance fails rather than passing its oldest page
    off as its newest."""
    sim, url = live_sim
    inst = sim.part(BackupifySim).fleet.instances[0]  # 45 exports: three pages
    foreign = Simulator(customers=1, seats_per_customer=1, seed=1)
    stream = io.StringIO()
    logs.setup("info", "logfmt", stream=stream)
    with ServerThread(foreign.app()) as elsewhere:
        sim.set_faults(
            [parse_fault(f"cross_origin@exports?customer={inst.id}&origin={elsewhere.url}")]
        )
        with ServerThread(exporter_for(backupify_source(url))) as exporter:
            body = scrape(exporter)
    assert foreign.requests == [], "nothing at all reached the other origin"
    assert "refused a pagination link to another origin" in stream.getvalue()
    assert value(body, "saas_backup_up", source="backupify") == 1
    up = {labels["customer_id"]: v for labels, v in series(body, "saas_backup_customer_up")}
    assert up.pop(str(inst.customer_id)) == 0
    assert set(up.values()) == {1}
    assert not series(
        body, "saas_backup_restore_job_start_timestamp_seconds", customer_id=str(inst.customer_id)
    )

"""CloudAlly's live API over real sockets: tasks named by source, yyyymmddhhmmss dates, ACTIVE
meaning enabled, every page of /v1/partners/tasks, /v1/partners/status outcomes, and the client
headers on every call."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from exporter.model import Snapshot
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.scenarios import heal, make_incident
from exporter.simulator.world import Shape
from exporter.source import Fetched
from exporter.vendors.cloudally.parse import CloudAllyTime
from exporter.vendors.cloudally.settings import CloudAllySettings
from exporter.vendors.cloudally.simfleet import FAILED_ERROR, MALFORMED_DATE
from exporter.vendors.cloudally.simulator import CloudAllySim
from exporter.vendors.cloudally.source import CloudAllySource
from tests.conftest import (
    ServerThread,
    cloudally_source,
    collect_all,
    exporter_for,
    scrape,
    series,
    value,
)

T = TypeVar("T")
HEADERS = {"client-id": "demo-client", "client-secret": "demo-secret"}
LIVE_LOGIN = {"auth_style": "headers", "email": "ops@example.com", "password": "pw-secret-1"}
# Fixed, so that the dates the simulator serves and the ones the exporter reads are the same.
NOW = float(int(time.time())) + 0.25


def live_sim(shape: Shape = "live", **options: Any) -> Simulator:
    return Simulator(
        customers=6, seats_per_customer=5, seed=3, token_ttl=3600, shape=shape, **options
    )


@pytest.fixture
def live_server() -> Iterator[tuple[Simulator, ServerThread]]:
    sim = live_sim(clock=lambda: NOW)
    with ServerThread(sim.app()) as server:
        yield sim, server


def served(server: ServerThread, path: str, **params: str | int) -> Any:
    """What the simulator serves a live client (headers and a partner user) at ``path``."""
    login = httpx.post(
        server.url + "/auth/partner",
        json={"email": "ops@example.com", "password": "x"},
        headers=HEADERS,
    ).json()
    auth = {"Authorization": f"Bearer {login['accessToken']}", **HEADERS}
    return httpx.get(server.url + path, params=params, headers=auth).json()


def labels_by_task(tasks: list[dict[str, Any]]) -> dict[str, str]:
    """The documented naming: the source in snake case; a customer's second task of the same
    source gets its task id appended."""
    names: dict[str, str] = {}
    taken: set[tuple[str, str]] = set()
    for task in sorted(tasks, key=lambda t: t["id"]):
        base = task["source"].lower()
        label = base if (task["userId"], base) not in taken else f"{base}/{task['id']}"
        taken.add((task["userId"], label))
        names[task["id"]] = label
    return names


def compact_time(number: int) -> float:
    return datetime.strptime(str(number), "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp()


class DirectStore:
    """Every read fresh: for looking at a source's Snapshot itself."""

    async def fetch(self, endpoint: str, key: str, load: Callable[[], Awaitable[T]]) -> Fetched[T]:
        return Fetched(await load(), time.time())

    def retain(self, endpoint: str, keys: Collection[str]) -> None:
        pass


def collect(url: str, **overrides: Any) -> Snapshot:
    settings = CloudAllySettings.model_validate(cloudally_source(url, **LIVE_LOGIN, **overrides))
    source = CloudAllySource(settings)

    async def run() -> Snapshot:
        try:
            return await collect_all(source, DirectStore())
        finally:
            await source.aclose()

    return asyncio.run(run())


def test_tasks_are_named_by_source_with_their_served_dates_and_sizes(
    live_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = live_server
    rows = served(server, "/v1/partners/tasks", pageSize=1000)["data"]
    tasks = [r for r in rows if r["type"] == "BACKUP"]
    assert len(tasks) == len(sim.part(CloudAllySim).fleet.tasks)
    with ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter:
        body = scrape(exporter)
    names = labels_by_task(tasks)
    assert "sharepoint_multi/tsk-9002-2" in names.values(), "a second SharePoint task"
    exported = {
        (labels["customer_id"], labels["application"])
        for labels, _ in series(body, "saas_backup_application_last_backup_status")
    }
    assert exported == {(t["userId"], names[t["id"]]) for t in tasks}
    assert not {app for _, app in exported} & {"backup", "unknown"}, "named by source, not type"
    for task in tasks:
        labels = {"customer_id": task["userId"], "application": names[task["id"]]}
        stamp = series(body, "saas_backup_application_last_backup_timestamp_seconds", **labels)
        dates = task["lastBackupDates"]
        if dates:
            assert stamp == [(stamp[0][0], compact_time(dates[task["source"]]))], task["id"]
        else:
            assert stamp == [], "never backed up: no time at all"
        size = value(body, "saas_backup_application_used_bytes", **labels)
        assert size == task["size"]


def test_active_means_enabled_not_running(live_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = live_server
    tasks = sim.part(CloudAllySim).fleet.tasks
    assert {t.status for t in tasks} == {"ACTIVE", "PAUSED", "ARCHIVED"}
    with ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter:
        body = scrape(exporter)
    words = {
        labels["status"] for labels, _ in series(body, "saas_backup_application_last_backup_status")
    }
    assert "running" not in words
    enabled = series(body, "saas_backup_application_enabled", source="cloudally")
    assert len(enabled) == len(tasks)
    assert sorted(v for _, v in enabled) == sorted(
        1.0 if t.status == "ACTIVE" else 0.0 for t in tasks
    )
    # The vendor's next-backup text and progress state are kept as given, for people to read;
    # the progress object's meaning is undocumented, so no ratio is made of it.
    snapshot = collect(server.url)
    assert {a.next_backup for a in snapshot.applications} == {t.next_backup for t in tasks}
    served = {t.progress["state"] for t in tasks if t.progress is not None}
    assert served == {"PREPARE"}, "the simulator serves a progress object"
    assert {a.progress for a in snapshot.applications} == {None, "PREPARE"}
    application_lines = [line for line in body.splitlines() if "application" in line]
    assert application_lines
    assert not [line for line in application_lines if "progress" in line.lower()]


def test_every_page_of_partner_tasks_is_read(live_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = live_server
    fleet = sim.part(CloudAllySim).fleet
    listed = len(fleet.tasks) + len([j for j in fleet.jobs if j.created <= NOW])
    first = served(server, "/v1/partners/tasks", pageSize=3)
    assert first["totalPages"] == math.ceil(listed / 3) >= 4
    assert {r["type"] for r in first["data"]} == {"BACKUP"}, "restore jobs are on later pages"
    sim.reset()
    with ServerThread(
        exporter_for(cloudally_source(server.url, page_size=3, **LIVE_LOGIN))
    ) as exporter:
        body = scrape(exporter)
    reads = [r for r in sim.requests if r.path == "/v1/partners/tasks"]
    assert len(reads) == first["totalPages"]
    assert all("nextPageToken=pt-" in r.query for r in reads[1:])
    jobs = {
        labels["job_id"]: labels["status"]
        for labels, _ in series(body, "saas_backup_restore_job_start_timestamp_seconds")
    }
    assert jobs["rst-1003"] == "failed"
    assert jobs["rst-1004"] == "running"
    assert len(series(body, "saas_backup_application_enabled")) == len(fleet.tasks)


def test_a_next_page_reply_key_is_followed_too(
    live_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = live_server
    fleet = sim.part(CloudAllySim).fleet
    fleet.next_key = "nextPage"
    assert "nextPageToken" not in served(server, "/v1/partners/tasks", pageSize=3)
    with ServerThread(
        exporter_for(cloudally_source(server.url, page_size=3, **LIVE_LOGIN))
    ) as exporter:
        body = scrape(exporter)
    assert len(series(body, "saas_backup_application_enabled")) == len(fleet.tasks)
    assert "rst-1003" in {
        labels["job_id"]
        for labels, _ in series(body, "saas_backup_restore_job_start_timestamp_seconds")
    }


def test_partner_status_failed_is_a_failed_backup_and_its_text_stays_out(
    live_server: tuple[Simulator, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim, server = live_server
    tasks = sim.part(CloudAllySim).fleet.tasks
    failed = next(t for t in tasks if t.outcome == "FAILED")
    never = next(t for t in tasks if t.backup_age is None)
    with ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter:
        body = scrape(exporter)
        page = httpx.get(exporter.url + "/", timeout=5).text
    statuses = {
        labels["application"].split("/")[0] + labels["customer_id"]: labels["status"]
        for labels, _ in series(body, "saas_backup_application_last_backup_status")
    }
    key = failed.service.lower() + failed.customer_id
    assert statuses.pop(key) == "failed"
    assert statuses.pop(never.service.lower() + never.customer_id) == "unknown"
    assert set(statuses.values()) == {"success"}, "reported, backed up, no FAILED"
    assert value(body, "saas_backup_customer_up", customer_id=failed.customer_id) == 1
    for text in (body, page, caplog.text):
        assert FAILED_ERROR not in text


def test_client_headers_go_on_every_call_and_the_live_api_needs_them(
    live_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = live_server
    with ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="cloudally") == 1
    paths = {r.path for r in sim.requests}
    assert {"/v1/partners/tasks", "/v1/partners/status", "/v1/restore/rst-1004"} <= paths
    for request in sim.requests:
        assert request.headers.get("client-id") == "demo-client", request.path
        assert request.headers.get("client-secret") == "demo-secret", request.path
    # The spec's login style still gets a token, but no data without the headers.
    login = httpx.post(
        server.url + "/auth/partner",
        json={"clientId": "demo-client", "clientSecret": "demo-secret"},
    ).json()
    bearer = {"Authorization": f"Bearer {login['accessToken']}"}
    tasks = server.url + "/v1/partners/tasks"
    assert httpx.get(tasks, headers=bearer).status_code == 401
    assert httpx.get(tasks, headers={**bearer, **HEADERS}).status_code == 200
    wrong = {"client-id": "demo-client", "client-secret": "wrong"}
    assert httpx.get(tasks, headers={**bearer, **wrong}).status_code == 401
    with ServerThread(exporter_for(cloudally_source(server.url))) as exporter:
        body = scrape(exporter)
        page = httpx.get(exporter.url + "/", timeout=5).text
    assert value(body, "saas_backup_up", source="cloudally") == 0
    assert "HTTP 401" in page


def test_a_malformed_backup_date_is_counted_not_fatal(
    live_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = live_server
    task = next(t for t in sim.part(CloudAllySim).fleet.tasks if t.customer_id == "acc-9003")
    task.extra_dates = {task.service: MALFORMED_DATE}
    with ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_parse_errors_total", source="cloudally") == 1
    assert value(body, "saas_backup_customer_up", customer_id="acc-9003") == 1
    labels = {"customer_id": "acc-9003", "application": task.service.lower()}
    assert series(body, "saas_backup_application_last_backup_status", **labels)
    # The garbage is not read as a time; /v1/partners/status still dates the task.
    status = next(
        row
        for row in served(server, "/v1/partners/status", pageSize=1000)["data"]
        if row["taskId"] == task.id
    )
    reported = datetime.fromisoformat(status["lastBackupDate"].replace("Z", "+00:00"))
    stamp = value(body, "saas_backup_application_last_backup_timestamp_seconds", **labels)
    assert stamp == reported.timestamp()


def test_the_live_demo_has_each_condition_and_heals() -> None:
    sim = live_sim()
    fleet = sim.part(CloudAllySim).fleet
    with ServerThread(sim.app()) as server:
        app = exporter_for(cloudally_source(server.url, **LIVE_LOGIN), ttl=0.2)
        with ServerThread(app) as exporter:
            body = scrape(exporter)
            now = time.time()
            enabled = {
                (labels["customer_id"], labels["application"]): v
                for labels, v in series(body, "saas_backup_application_enabled")
            }
            stale = [
                labels
                for labels, stamp in series(
                    body, "saas_backup_application_last_backup_timestamp_seconds"
                )
                if now - stamp > 48 * 3600
                and enabled[labels["customer_id"], labels["application"]] == 1
            ]
            assert len(stale) == 1, "the stale-task alert has an enabled task to fire on"
            statuses = [
                labels["status"]
                for labels, _ in series(body, "saas_backup_application_last_backup_status")
            ]
            assert statuses.count("failed") == 1
            assert statuses.count("unknown") == 1, "the never backed-up task"
            assert list(enabled.values()).count(0) == 2, "a paused and an archived task"
            jobs = {
                labels["job_id"]: (labels["status"], stamp)
                for labels, stamp in series(body, "saas_backup_restore_job_start_timestamp_seconds")
            }
            assert jobs["rst-1003"][0] == "failed"
            assert jobs["rst-1004"][0] == "running"
            assert now - jobs["rst-1004"][1] > 24 * 3600, "stuck"

            heal(sim)
            time.sleep(0.3)
            body = scrape(exporter)
            now = time.time()
            stamps = series(body, "saas_backup_application_last_backup_timestamp_seconds")
            assert len(stamps) == len(fleet.tasks)
            assert all(now - stamp < 48 * 3600 for _, stamp in stamps)
            assert {v for _, v in series(body, "saas_backup_application_enabled")} == {1.0}
            assert {
                labels["status"]
                for labels, _ in series(body, "saas_backup_application_last_backup_status")
            } == {"success"}

            trouble = make_incident(sim).of("failed_restore")
            time.sleep(0.3)
            body = scrape(exporter)
    info = series(body, "saas_backup_customer_info", customer_id=trouble.customer_id)
    assert info[0][0]["customer_name"] == trouble.customer_name
    assert value(body, "saas_backup_restore_jobs", type="restore", status="failed") == 1


@pytest.mark.parametrize("shape", ["live", "mixed"])
def test_backup_tasks_come_from_one_listing_only(shape: Shape) -> None:
    """Where /v1/partners/tasks lists backup tasks, /v1/backup-tasks is not read: the mixed
    shape serves the same tasks in both, and none may count twice."""
    sim = live_sim(shape)
    with (
        ServerThread(sim.app()) as server,
        ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter,
    ):
        body = scrape(exporter)
    assert "/v1/backup-tasks" not in {r.path for r in sim.requests}
    tasks = sim.part(CloudAllySim).fleet.tasks
    assert len(series(body, "saas_backup_application_last_backup_status")) == len(tasks)


def test_a_live_account_without_backup_tasks_stays_up() -> None:
    """No backup task in /v1/partners/tasks: the spec listing is tried, and its 404 in the live
    API means "no such listing", not a failed source."""
    sim = live_sim()
    sim.part(CloudAllySim).fleet.tasks.clear()
    with (
        ServerThread(sim.app()) as server,
        ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter,
    ):
        body = scrape(exporter)
    assert [r.status for r in sim.requests if r.path == "/v1/backup-tasks"] == [404]
    assert value(body, "saas_backup_up", source="cloudally") == 1
    assert series(body, "saas_backup_application_last_backup_status") == []
    assert value(body, "saas_backup_restore_jobs", type="restore", status="failed") == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (20230330202812, datetime(2023, 3, 30, 20, 28, 12, tzinfo=UTC).timestamp()),
        ("20230330202812", datetime(2023, 3, 30, 20, 28, 12, tzinfo=UTC).timestamp()),
        ("2021-01-07T11:44:57.000Z", datetime(2021, 1, 7, 11, 44, 57, tzinfo=UTC).timestamp()),
        (MALFORMED_DATE, None),
        (20231330202812, None),  # month 13
        (1680208092, None),  # epoch seconds are not CloudAlly's
        (True, None),
    ],
)
def test_cloudally_times(given: object, expected: float | None) -> None:
    from pydantic import TypeAdapter

    from exporter.parsing import Problems

    problems = Problems()
    parsed = TypeAdapter(CloudAllyTime).validate_python(given, context={"problems": problems})
    assert parsed == expected
    assert problems.count == (1 if expected is None else 0)


def test_without_partner_status_no_task_passes_for_a_success(
    live_server: tuple[Simulator, ServerThread],
) -> None:
    sim, server = live_server
    sim.set_faults([parse_fault("500@partner_status")])
    with ServerThread(exporter_for(cloudally_source(server.url, **LIVE_LOGIN))) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source="cloudally") == 1
    statuses = series(body, "saas_backup_application_last_backup_status")
    assert len(statuses) == len(sim.part(CloudAllySim).fleet.tasks)
    assert {labels["status"] for labels, _ in statuses} == {"unknown"}
    assert {v for _, v in series(body, "saas_backup_customer_up")} == {0.0}
    # Dates, sizes and states come from the task list and stay.
    assert len(series(body, "saas_backup_application_enabled")) == len(statuses)

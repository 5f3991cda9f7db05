"""The simulator speaks Datto's protocol: auth, both shapes, paging, budgets and faults."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.fleet import DAY, HOUR, generate_fleet
from exporter.simulator.serve import add_arguments, run_from_args
from exporter.vendors.backupify.simulator import BackupifySim
from exporter.vendors.cloudally.simulator import CloudAllySim
from tests.conftest import ServerThread, served_simulator

AUTH = ("demo-public", "demo-private")


@pytest.fixture
def sim() -> Simulator:
    return Simulator(customers=6, seats_per_customer=10, seed=11)


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with (
        ServerThread(sim.app()) as server,
        httpx.Client(base_url=server.url, auth=AUTH, timeout=10) as client,
    ):
        yield client


def test_basic_auth_is_enforced(client: httpx.Client) -> None:
    assert client.get("/v1/saas/domains", auth=None).status_code == 401
    assert client.get("/v1/saas/domains", auth=("demo-public", "wrong")).status_code == 401
    assert client.get("/v1/saas/domains").status_code == 200


def test_live_and_mixed_shapes(sim: Simulator, client: httpx.Client) -> None:
    domains = client.get("/v1/saas/domains").json()
    assert isinstance(domains, list)
    assert isinstance(domains[0]["saasCustomerId"], int)
    assert {"backupStats", "seatsUsed", "saasCustomerName"} <= set(domains[0])
    first, second = (str(c.id) for c in sim.fleet.customers[:2])
    spec_seats = client.get(f"/v1/saas/{first}/seats").json()
    assert set(spec_seats) == {"seats"}
    assert {"licenseStatus", "lastBackup", "displayName", "email"} <= set(spec_seats["seats"][0])
    live_seats = client.get(f"/v1/saas/{second}/seats").json()
    assert isinstance(live_seats, list)
    assert {"seatState", "mainId", "billable"} <= set(live_seats[0])
    assert "lastBackup" not in live_seats[0]
    assert client.get("/v1/saas/999/seats").status_code == 404


def test_mixed_shape_alternates_by_fleet_position(sim: Simulator, client: httpx.Client) -> None:
    for position, customer in enumerate(sim.fleet.customers):
        seats = client.get(f"/v1/saas/{customer.id}/seats").json()
        assert isinstance(seats, dict if position % 2 == 0 else list), position
        apps = client.get(f"/v1/saas/{customer.id}/applications").json()
        assert isinstance(apps, list if position % 3 == 0 else dict), position
    domains = client.get("/v1/saas/domains").json()
    for customer, domain in zip(sim.fleet.customers, domains, strict=True):
        assert domain["saasCustomerId"] == customer.id
        assert domain["seatsUsed"] == customer.active_seats
        assert 0 <= domain["backupStats"]["backupPercentage"] <= 100


def test_spec_seats_carry_last_backup_and_license_status() -> None:
    now = 1_780_000_000.0
    sim = Simulator(customers=3, seats_per_customer=20, seed=4, shape="spec", clock=lambda: now)
    customer = sim.fleet.customers[0]
    with ServerThread(sim.app()) as server:
        body = httpx.get(f"{server.url}/v1/saas/{customer.id}/seats", auth=AUTH).json()
        users = httpx.get(
            f"{server.url}/v1/saas/{customer.id}/seats", params={"seatType": "User"}, auth=AUTH
        ).json()
    by_id = {s["remoteId"]: s for s in body["seats"]}
    assert len(by_id) == len(customer.seats)
    for seat in customer.seats:
        shown = by_id[seat.remote_id]
        assert (
            shown["licenseStatus"]
            == {
                "Active": "Licensed",
                "Unprotected": "Unlicensed",
                "Paused": "Paused",
                "Archived": "Archived",
            }[seat.state]
        )
        if seat.backup_age is None:
            assert shown["lastBackup"] is None
        else:
            parsed = datetime.strptime(shown["lastBackup"], "%Y-%m-%dT%H:%M:%SZ")
            assert abs(parsed.replace(tzinfo=UTC).timestamp() - (now - seat.backup_age)) < 1
    assert {s["seatType"] for s in users["seats"]} == {"User"}


def test_spec_shape() -> None:
    sim = Simulator(customers=2, seats_per_customer=3, seed=1, shape="spec")
    with ServerThread(sim.app()) as server:
        body = httpx.get(server.url + "/v1/saas/domains", auth=AUTH).json()
        assert set(body) == {"domains"}
        assert body["domains"][0]["saasCustomerId"] == "1001"
        seats = httpx.get(server.url + "/v1/saas/1002/seats", auth=AUTH).json()
        assert set(seats) == {"seats"}


def test_applications_paging_and_history(sim: Simulator, client: httpx.Client) -> None:
    customer = sim.fleet.customers[2]  # the mixed fleet's even positions have the spec shape
    path = f"/v1/saas/{customer.id}/applications"
    first = client.get(path, params={"_perPage": 1}).json()
    assert first["pagination"]["totalPages"] == len(customer.applications)
    assert len(first["items"]) == 1
    last = client.get(path, params={"_perPage": 1, "_page": 4}).json()
    assert (
        last["items"][0]["suites"][0]["appTypes"][0]["appType"] == customer.applications[3].app_type
    )
    history = first["items"][0]["suites"][0]["appTypes"][0]["backupHistory"]
    starts = [h["startTime"] for h in history]
    assert starts == sorted(starts, reverse=True), "index 0 is the newest"
    assert all(isinstance(t, int) and t > 1e12 for t in starts), "epoch milliseconds"
    short = client.get(path, params={"daysUntil": 1}).json()
    assert len(short["items"][0]["suites"][0]["appTypes"][0]["backupHistory"]) < len(history)
    assert client.get(path, params={"daysUntil": 31}).status_code == 400
    assert all("timeWindow" not in h for h in history)
    # Every third customer's envelope comes wrapped in an array, as the live API sometimes does.
    wrapped = client.get(f"/v1/saas/{sim.fleet.customers[0].id}/applications").json()
    assert isinstance(wrapped, list)
    assert "pagination" in wrapped[0]


def test_live_applications_are_daily_windows() -> None:
    sim = Simulator(customers=6, seats_per_customer=10, seed=11, shape="live")
    now = time.time()
    seen_status: set[str] = set()
    buckets = uningested = 0
    with ServerThread(sim.app()) as server:
        for customer in sim.fleet.customers:
            path = f"/v1/saas/{customer.id}/applications"
            body = httpx.get(server.url + path, auth=AUTH).json()
            envelope = body[0] if isinstance(body, list) else body
            (item,) = envelope["items"]  # one item per customer, its suites inside
            apps = [a for suite in item["suites"] for a in suite["appTypes"]]
            assert item["usedBytes"] == sum(a["usedBytes"] for a in apps)
            assert len(apps) == len(customer.applications)
            for app in apps:
                assert not app["appType"].startswith(("OneDrive", "SharePoint", "Teams"))
                windows = app["backupHistory"]
                names = [w["timeWindow"] for w in windows]
                assert names == [f"Between{d}dAnd{d + 1}d" for d in range(len(windows))]
                for w in windows:
                    # Live startTime is the window's later bound.
                    assert w["startTime"] - w["endTime"] == 86_400_000
                    assert w["startTime"] <= now * 1000 + 1000
                    seen_status.add(w["status"])
                protected = app["lastFullyProtectedTime"]
                if isinstance(protected, str):
                    buckets += 1
                    assert protected == "OVER_10_DAYS_AGO"
                else:
                    assert 0 < now - protected / 1000 < 11 * 86400
                uningested += app["uningestedServiceCount"]
            seats = httpx.get(server.url + f"/v1/saas/{customer.id}/seats", auth=AUTH).json()
            for seat in seats:
                billable = seat["seatType"] == "User" and seat["seatState"] != "Unprotected"
                assert seat["billable"] == ("1" if billable else "")
    assert seen_status == {"Perfect", "Backup With Issues", "Insufficient History"}
    assert buckets >= 1
    assert uningested > 0


def test_rate_limit_headers_and_budget() -> None:
    sim = Simulator(customers=1, seats_per_customer=2, seed=1, budget=4)
    with ServerThread(sim.app()) as server:
        first = httpx.get(server.url + "/v1/saas/domains", auth=AUTH)
        second = httpx.get(server.url + "/v1/saas/1001/seats", auth=AUTH)
        assert int(first.headers["X-API-Limit-Remaining"]) == 3
        assert int(second.headers["X-API-Limit-Remaining"]) == 0
        assert second.headers["X-API-Limit-Cost"] == "3"
        assert int(first.headers["X-API-Limit-Resets"]) > time.time()
        over = httpx.get(server.url + "/v1/saas/domains", auth=AUTH)
        assert over.status_code == 429
        assert 0 < int(over.headers["Retry-After"]) <= 3600


@pytest.mark.parametrize(
    ("spec", "status"),
    [("401@*", 401), ("429@domains?retry_after=2", 429), ("500@domains", 500), ("504@*", 504)],
)
def test_status_faults(sim: Simulator, client: httpx.Client, spec: str, status: int) -> None:
    sim.set_faults([parse_fault(spec)])
    response = client.get("/v1/saas/domains")
    assert response.status_code == status
    if status == 429:
        assert response.headers["Retry-After"] == "2"


def test_fault_targets_and_countdown(sim: Simulator, client: httpx.Client) -> None:
    big = max(sim.fleet.customers, key=lambda c: len(c.seats))
    small = min(sim.fleet.customers, key=lambda c: len(c.seats))
    sim.set_faults([parse_fault(f"504@seats?min_seats={len(small.seats)}")])
    assert client.get(f"/v1/saas/{big.id}/seats").status_code == 504
    assert client.get(f"/v1/saas/{small.id}/seats").status_code == 200
    sim.set_faults([parse_fault(f"500@seats?customer={small.id}&times=2")])
    codes = [client.get(f"/v1/saas/{small.id}/seats").status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert client.get(f"/v1/saas/{big.id}/seats").status_code == 200


def test_malformed_slow_and_hang(sim: Simulator, client: httpx.Client) -> None:
    sim.set_faults([parse_fault("malformed@domains?times=1")])
    response = client.get("/v1/saas/domains")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    sim.set_faults([parse_fault("slow@domains?delay_ms=300")])
    started = time.monotonic()
    assert client.get("/v1/saas/domains").status_code == 200
    assert time.monotonic() - started >= 0.3
    sim.set_faults([parse_fault("hang@domains?delay_ms=200")])
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/saas/domains", timeout=0.05)
    started = time.monotonic()
    assert client.get("/v1/saas/domains").status_code == 200, "a short hang ends"
    assert time.monotonic() - started >= 0.2
    # The default hang lasts an hour; the server's shutdown must still cancel it.
    sim.set_faults([parse_fault("hang@domains")])
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/saas/domains", timeout=0.2)


def test_malformed_seats_are_cut_off_mid_document(sim: Simulator, client: httpx.Client) -> None:
    sim.set_faults([parse_fault(f"malformed@seats?customer={sim.fleet.customers[1].id}")])
    broken = client.get(f"/v1/saas/{sim.fleet.customers[1].id}/seats")
    assert broken.status_code == 200
    assert broken.text.startswith('{"seats": [')
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    assert "X-API-Limit-Remaining" in broken.headers
    assert client.get(f"/v1/saas/{sim.fleet.customers[0].id}/seats").status_code == 200


def test_fault_401_costs_nothing_and_429_counts_down(sim: Simulator, client: httpx.Client) -> None:
    before = int(client.get("/v1/saas/domains").headers["X-API-Limit-Remaining"])
    sim.set_faults([parse_fault("401@*?times=1")])
    rejected = client.get("/v1/saas/domains")
    assert rejected.status_code == 401
    assert rejected.json() == {"code": 401, "message": "Unauthorized"}
    assert "X-API-Limit-Remaining" not in rejected.headers
    after = int(client.get("/v1/saas/domains").headers["X-API-Limit-Remaining"])
    assert after == before - 1, "only the successful call was charged"
    sim.set_faults([parse_fault("429@domains?retry_after=1.2&times=1")])
    limited = client.get("/v1/saas/domains")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2", "rounded up to whole seconds"
    assert "X-API-Limit-Resets" in limited.headers
    assert client.get("/v1/saas/domains").status_code == 200
    assert sim.calls["datto.domains"] == 5, "faulted calls reached the route too"


def test_calls_and_request_log(sim: Simulator, client: httpx.Client) -> None:
    client.get("/v1/saas/domains")
    client.get(f"/v1/saas/{sim.fleet.customers[0].id}/seats")
    client.get("/v1/saas/domains", auth=None)
    assert sim.calls == {"datto.domains": 2, "datto.seats": 1}
    assert [r.status for r in sim.requests] == [200, 200, 401]
    assert "authorization" in sim.requests[0].headers
    stats = client.get("/_sim/stats").json()
    assert stats["calls"] == {"datto.domains": 2, "datto.seats": 1}
    assert client.put("/_sim/faults", json=["504@domains"]).status_code == 200
    assert client.get("/v1/saas/domains").status_code == 504
    assert client.put("/_sim/faults", json=["nonsense"]).status_code == 400
    sim.reset()
    assert sim.calls.total() == 0


def test_fleet_is_deterministic_and_realistic() -> None:
    fleet = generate_fleet(12, 25, seed=1)
    assert fleet == generate_fleet(12, 25, seed=1)
    assert fleet != generate_fleet(12, 25, seed=2)
    seats = [s for c in fleet.customers for s in c.seats]
    active = [s for s in seats if s.state == "Active"]
    recent = [s for s in active if s.backup_age is not None and s.backup_age < 12 * HOUR]
    assert len(recent) > len(active) / 2, "most seats backed up within hours"
    assert any(s.backup_age is not None and s.backup_age > 2 * DAY for s in active)
    assert any(s.backup_age is None for s in active), "licensed but never backed up"
    assert {"Paused", "Unprotected", "Archived"} <= {s.state for s in seats}
    assert [c.status for c in fleet.customers].count("inactive") == 1
    assert any(len(c.seats) > 40 for c in fleet.customers)
    assert {"SharedMailbox", "User"} <= {s.seat_type for s in seats}
    newest = {a.history[0].status for c in fleet.customers for a in c.applications}
    assert {"Success", "Failed", "Partial"} <= newest


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("504", "expected KIND@ROUTE"),
        ("503@seats", "unknown kind"),
        ("504@seats?colour=red", "unknown key"),
        ("504@seats?times=many", "times='many' must be a whole number"),
        ("504@seats?min_seats=-1", "min_seats='-1' must be a whole number"),
        ("slow@seats?delay_ms=nan", "delay_ms='nan' must be a number"),
        ("429@seats?retry_after=-2", "retry_after='-2' must be a number"),
        ("504@seats?times", "'times' is not key=value"),
        ("504@seats?times=1&times=2", "'times' given twice"),
    ],
)
def test_bad_fault_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(spec)


def test_a_fault_on_a_route_no_vendor_serves_is_refused(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown route 'users'"):
        sim.set_faults([parse_fault("504@users")])
    with pytest.raises(ValueError, match="unknown route 'users'"):
        Simulator(customers=1, seats_per_customer=1, faults=[parse_fault("504@users")])
    sim.set_faults([parse_fault("504@seats"), parse_fault("500@token"), parse_fault("504@*")])
    assert [f.route for f in sim.faults] == ["seats", "token", "*"]


def test_fleet_ids_and_mailboxes_are_unique_and_vendor_like() -> None:
    fleet = generate_fleet(12, 25, seed=1)
    seats = [s for c in fleet.customers for s in c.seats]
    assert len({s.remote_id for s in seats}) == len(seats)
    assert all(
        re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", s.remote_id) for s in seats
    )
    for customer in fleet.customers:
        assert len({s.main_id for s in customer.seats}) == len(customer.seats)
        office = customer.product == "Office365"
        assert customer.domain.endswith(".onmicrosoft.com") == office
        assert customer.external_subscription_id.startswith(f"Classic:{customer.product}:")
        apps = {a.app_type for a in customer.applications}
        assert apps == (
            {"Office365Exchange", "OneDrive", "SharePoint", "Teams"}
            if office
            else {"Gmail", "GoogleDrive", "GoogleCalendar", "GoogleContacts"}
        )
        for app in customer.applications:
            assert len(app.history) == 10
            assert all(h.total == len(customer.seats) for h in app.history)
            assert all(h.perfect <= h.with_backup <= h.active for h in app.history)
    inactive = next(c for c in fleet.customers if c.status == "inactive")
    assert min(a.history[0].start_age for a in inactive.applications) > 2 * DAY
    assert {"Site", "TeamSite", "Team", "SharedDrive"} <= {s.seat_type for s in seats}


def test_serve_announces_the_port_it_picked() -> None:
    sim = Simulator(customers=2, seats_per_customer=2, seed=1)
    with served_simulator(sim) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", url)
        assert httpx.get(url + "/_sim/stats").json()["calls"] == {}


@pytest.mark.parametrize(
    "argv", [["--listen", "127.0.0.1"], ["--listen", "127.0.0.1:70000"], ["--faults", "504@x"]]
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run_from_args(parser.parse_args(argv)) == 2
    assert capsys.readouterr().err


def test_backupify_tokens_expire_and_lists_carry_link_headers() -> None:
    sim = Simulator(customers=6, seats_per_customer=2, seed=3, token_ttl=0.3)
    with ServerThread(sim.app()) as server:
        base = server.url
        bad = httpx.post(
            base + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "nope",
            },
        )
        assert bad.status_code == 401
        token = httpx.post(
            base + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
            },
        ).json()
        assert token["token_type"] == "bearer"
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        instance = sim.part(BackupifySim).fleet.instances[0].id
        first = httpx.get(f"{base}/v1/backup_instances/{instance}/backups", headers=auth)
        assert first.status_code == 200
        assert len(first.json()) == 20
        assert {"next", "last", "first"} <= set(first.links)
        last = httpx.get(first.links["last"]["url"], headers=auth).json()
        ids = [b["id"] for b in first.json() + last]
        assert ids == sorted(ids), "ascending by id"
        active = httpx.get(f"{base}/v1/backup_instances/{instance}/backups/active", headers=auth)
        assert active.json()["status"] == "running"
        assert httpx.get(f"{base}/v1/backup_definitions").status_code == 401
        time.sleep(0.35)
        assert httpx.get(f"{base}/v1/backup_definitions", headers=auth).status_code == 401


def test_cloudally_refresh_tokens_work_once_and_jobs_progress() -> None:
    sim = Simulator(customers=4, seats_per_customer=2, seed=3)
    with ServerThread(sim.app()) as server:
        base = server.url
        spec = httpx.post(
            base + "/auth/partner", json={"clientId": "demo-client", "clientSecret": "demo-secret"}
        ).json()
        live = httpx.post(
            base + "/auth/partner",
            json={"email": "a@b.c", "password": "x"},
            headers={"client-id": "demo-client", "client-secret": "demo-secret"},
        )
        assert live.status_code == 200
        refreshed = httpx.post(base + "/auth/refresh", json={"refreshToken": spec["refreshToken"]})
        assert refreshed.status_code == 200
        again = httpx.post(base + "/auth/refresh", json={"refreshToken": spec["refreshToken"]})
        assert again.status_code == 401, "a refresh token works once"
        auth = {"Authorization": f"Bearer {refreshed.json()['accessToken']}"}
        page = httpx.get(base + "/v1/backup-tasks", params={"pageSize": 3}, headers=auth).json()
        assert len(page["data"]) == 3
        assert page["nextPageToken"] == "pt-2"
        rest = httpx.get(
            base + "/v1/backup-tasks", params={"pageSize": 3, "nextPageToken": "pt-2"}, headers=auth
        ).json()
        assert rest["data"][0]["id"] != page["data"][0]["id"]
        job = sim.part(CloudAllySim).fleet.job("rst-1005")
        assert job is not None
        assert job.status(sim.start) == "pending"
        assert job.status(sim.start + 30) == "in_progress"
        assert job.status(sim.start + 61) == "success"
        stuck = sim.part(CloudAllySim).fleet.job("rst-1004")
        assert stuck is not None
        assert stuck.status(sim.start + 10**6) == "in_progress"
        status = httpx.get(base + "/v1/restore/rst-1003", headers=auth).json()
        assert status["status"] == "failed"
        assert status["endTime"] is not None


def test_backupify_backups_start_and_finish_as_time_passes() -> None:
    from exporter.vendors.backupify.simulator import PERIOD, backups

    sim = Simulator(customers=6, seats_per_customer=2, seed=3)
    inst = sim.part(BackupifySim).fleet.instances[2]
    assert inst.stuck_since is None
    # Just after a scheduled start the newest backup runs; after its duration it has finished.
    start = inst.phase + (int((sim.start - inst.phase) // PERIOD) + 1) * PERIOD
    running = backups(inst, start + 1)[-1]
    assert running["status" if "status" in running else "state"] == "running"
    done = backups(inst, start + inst.duration + 1)[-1]
    assert done["id"] == running["id"]
    assert done.get("finished_at", done.get("completed_at")) is not None
    stuck = sim.part(BackupifySim).fleet.instances[0]
    later = backups(stuck, sim.start + 3 * PERIOD)[-1]
    assert later["started_at"] == backups(stuck, sim.start)[-1]["started_at"], "never finishes"

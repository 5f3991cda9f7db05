"""`seats change` when things go wrong, over a real socket: bad input gets a clear error and
changes nothing; a partial failure, a read-only or refused key, a 429, and changes the vendor
applies later each end with the exit code and the per-seat outcome they call for."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.simulator.faults import parse_fault
from exporter.simulator.world import Shape
from tests.test_seats_support import CANARY, Vendor, add_seats, seats, set_states, table, vendor


def change(
    capsys: pytest.CaptureFixture[str], where: Vendor, customer: object, *args: object
) -> tuple[int, str, str]:
    run = seats(capsys, where, "change", "--customer", str(customer), *(str(a) for a in args))
    return run.code, run.out, run.err


def assert_unchanged(where: Vendor, before: list[str]) -> None:
    assert where.puts() == []
    assert where.changes.log == []
    assert [s.state for c in where.sim.fleet.customers for s in c.seats] == before


def snapshot(where: Vendor) -> list[str]:
    return [s.state for c in where.sim.fleet.customers for s in c.seats]


def test_bad_input_gets_a_clear_error_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        office = v.customer()
        google = v.customer("GoogleApps")
        set_states(office, "Active")
        ids = add_seats(office, 2)
        add_seats(office, 1, seat_type="SharedMailbox")
        before = snapshot(v)
        cases = [
            (
                ("nobody", "--action", "license", "--ids", ids[0], "--apply"),
                "no customer 'nobody' among the source's 4 customers",
            ),
            (
                (office.id, "--action", "license", "--ids", f"{ids[0]},not-a-seat", "--apply"),
                "1 seat ids are not seats of this customer: not-a-seat",
            ),
            (
                # A real seat, of another customer.
                (office.id, "--action", "license", "--ids", google.seats[0].remote_id, "--apply"),
                f"1 seat ids are not seats of this customer: {google.seats[0].remote_id}",
            ),
            (
                (google.id, "--action", "license", "--ids", google.seats[0].remote_id, "--apply"),
                f"customer {google.id} is on legacy Google seat management",
            ),
            (
                (office.id, "--action", "license", "--where", "state=unlicensed", "--apply"),
                "the seats are of 2 types (SharedMailbox: 1, User: 2); one request takes one "
                "type: choose one with --type",
            ),
            (
                (office.id, "--action", "license", "--ids", ids[0], "--type", "SharedMailbox"),
                f"1 of the seats are not of type SharedMailbox: {ids[0]}",
            ),
            (
                (office.id, "--action", "license", "--where", "state=unprotected"),
                "state 'unprotected': not one of licensed, paused, unlicensed, archived, unknown",
            ),
            (
                (office.id, "--action", "license", "--where", "owner=me"),
                "--where owner=: unknown key (state or type)",
            ),
            (
                (office.id, "--action", "license", "--ids", " , "),
                "no seat ids given",
            ),
            (
                (office.id, "--action", "license", "--ids-file", str(tmp_path / "none.txt")),
                f"--ids-file {tmp_path / 'none.txt'}: cannot read it (No such file or directory)",
            ),
        ]
        for args, message in cases:
            code, _, err = change(capsys, v, *args)
            assert code == 2, (args, err)
            assert f"seats: {message}" in err, (args, err)
            assert_unchanged(v, before)

        # The same through the dry run: the errors do not wait for --apply.
        code, _, err = change(capsys, v, "nobody", "--action", "license", "--ids", ids[0])
        assert code == 2
        assert "no customer 'nobody'" in err


def test_legacy_google_is_refused_by_the_vendor_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command refuses before sending; the simulator refuses as Datto does for a client
    that does not know."""
    import httpx

    with vendor(tmp_path) as v:
        google = v.customer("GoogleApps")
        assert google.external_subscription_id.startswith("Classic:GoogleApps:")
        reply = httpx.put(
            f"{v.url}/v1/saas/{google.id}/{google.external_subscription_id}/bulkSeatChange",
            json={"seat_type": "User", "action_type": "License", "ids": ["x"]},
            auth=("demo-public", CANARY),
        )
        assert reply.status_code == 400
        assert "legacy Google seat management" in reply.json()["message"]


def test_a_read_only_key_changes_nothing_and_stops_at_the_first_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        ids = add_seats(customer, 250)
        v.changes.read_only = True
        code, out, err = change(
            capsys, v, customer.id, "--action", "license", "--where", "state=unlicensed", "--apply"
        )
        assert code == 1
        assert len(v.puts()) == 1, "the other batches are not sent"
        assert v.changes.log == []
        assert set(v.states(customer, ids)) == {"Unprotected"}
        assert "HTTP 403" in out
        assert "the API key may not change seats (a read-only key?)" in out
        assert "changed 0, skipped 0, failed 100, not yet confirmed 0, not sent 150" in out
        assert "outcome=refused" in err


def test_refused_keys_are_a_clear_error_without_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        v.sim.set_faults([parse_fault("401@*")])
        before = snapshot(v)
        code, _, err = change(
            capsys, v, customer.id, "--action", "license", "--where", "state=unlicensed", "--apply"
        )
        assert code == 1
        assert "GET /v1/saas/domains: HTTP 401 (check the credentials)" in err
        assert_unchanged(v, before)


@pytest.mark.parametrize(("shape", "live_results"), [("spec", False), ("live", True)])
def test_a_partial_failure_is_read_per_seat_and_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: Shape, live_results: bool
) -> None:
    with vendor(tmp_path, shape=shape, style="live" if shape == "live" else "spec") as v:
        customer = v.customer()
        set_states(customer, "Active")
        ids = add_seats(customer, 120)
        v.changes.refuse = {ids[3], ids[110]}
        v.changes.live_results = live_results
        code, out, _ = change(
            capsys, v, customer.id, "--action", "license", "--where", "state=unlicensed", "--apply"
        )
        assert code == 1
        rows = table(out)
        for seat_id in ids:
            if seat_id in v.changes.refuse:
                assert rows[seat_id].endswith("failed   Seat change failed"), rows[seat_id]
            else:
                assert rows[seat_id].endswith("changed  Seat licensed successfully")
        assert "changed 118, skipped 0, failed 2" in out
        assert [len(c.failed) for c in v.changes.log] == [1, 1]
        # Nothing had to be read again: the answers said it all.
        assert sum(1 for r in v.sim.requests if r.path.endswith("/seats")) == 1


def test_changes_applied_later_are_not_yet_confirmed_then_confirmed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        ids = add_seats(customer, 3)
        # Datto applies changes in about two minutes; the live answer says nothing per seat.
        v.changes.delay_seconds = 3600
        code, out, _ = change(
            capsys, v, customer.id, "--action", "license", "--ids", ",".join(ids), "--apply"
        )
        assert code == 3
        assert "changed 0, skipped 0, failed 0, not yet confirmed 3" in out
        assert all(" not yet confirmed " in line for line in table(out).values())

        # With --wait, the seats are read again until they show it.
        v.changes.delay_seconds = 0.5
        code, out, _ = change(
            capsys,
            v,
            customer.id,
            "--action",
            "license",
            "--ids",
            ",".join(ids),
            "--apply",
            "--wait",
            "30",
            "--wait-interval",
            "0.2",
        )
        assert code == 0, out
        assert "changed 3, skipped 0, failed 0, not yet confirmed 0" in out
        assert set(v.states(customer, ids)) == {"Active"}


def test_a_change_datto_does_not_offer_is_not_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        archived = add_seats(customer, 1, state="Archived")
        fine = add_seats(customer, 2, state="Paused")
        code, out, _ = change(
            capsys, v, customer.id, "--action", "license", "--ids", ",".join([*archived, *fine])
        )
        assert code == 0
        assert table(out)[archived[0]].endswith(
            "cannot: Datto only deletes the backups of an archived seat"
        )
        assert "3 seats selected: 2 to change in 1 request" in out
        code, out, _ = change(
            capsys,
            v,
            customer.id,
            "--action",
            "license",
            "--ids",
            ",".join([*archived, *fine]),
            "--apply",
        )
        assert code == 1
        assert [[e.remote_id for e in c.entries] for c in v.changes.log] == [fine]
        assert " failed " in table(out)[archived[0]]
        assert v.states(customer, [*archived, *fine]) == ["Archived", "Active", "Active"]


def test_a_429_is_waited_out_as_retry_after_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        ids = add_seats(customer, 2)
        v.sim.set_faults([parse_fault("429@seat_change?retry_after=1&times=1")])
        code, out, _ = change(
            capsys, v, customer.id, "--action", "license", "--ids", ",".join(ids), "--apply"
        )
        assert code == 0, out
        puts = v.puts()
        assert [r.status for r in puts] == [429, 200]
        assert puts[1].time - puts[0].time >= 0.9, "Retry-After: 1 was honoured"
        assert set(v.states(customer, ids)) == {"Active"}


def test_unlicensing_many_seats_asks_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Unprotected")
        ids = add_seats(customer, 12, state="Active")
        args = ("--action", "unlicense", "--where", "state=licensed", "--apply")
        code, out, err = change(capsys, v, customer.id, *args)
        assert code == 2
        assert "unlicensing 12 seats (more than 10) needs --yes" in err
        assert v.puts() == []
        assert "note: Datto starts a 30-day countdown" in out

        code, _, _ = change(capsys, v, customer.id, *args, "--yes")
        assert code == 0
        assert set(v.states(customer, ids)) == {"Unprotected"}

        # At most --confirm-above seats need no confirmation.
        set_states(customer, "Active", seat_type="User")
        users = [s for s in customer.seats if s.seat_type == "User"]
        code, _, _ = change(capsys, v, customer.id, *args, "--confirm-above", str(len(users)))
        assert code == 0
        assert {s.state for s in users} == {"Unprotected"}


def test_a_request_without_an_answer_is_judged_by_reading_the_seats_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path, request_deadline_seconds=0.5) as v:
        customer = v.customer()
        ids = add_seats(customer, 2)
        other = add_seats(customer, 2, seat_type="SharedMailbox")
        # Every answer to a change comes late: each attempt times out, yet the vendor applied it.
        v.changes.answer_after_seconds = 2
        args = ("--action", "license", "--apply")
        code, out, _ = change(capsys, v, customer.id, "--ids", ",".join(ids), *args)
        assert code == 0, out
        for seat_id in ids:
            assert "confirmed by reading the seats again, though: PUT " in table(out)[seat_id]
        assert set(v.states(customer, ids)) == {"Active"}

        # A vendor that fails it for good: the seats stay as they were, and the run fails.
        v.changes.answer_after_seconds = 0
        v.sim.set_faults([parse_fault("500@seat_change")])
        code, out, _ = change(capsys, v, customer.id, "--ids", ",".join(other), *args)
        assert code == 1
        for seat_id in other:
            assert table(out)[seat_id].endswith("bulkSeatChange: HTTP 500")
        assert set(v.states(customer, other)) == {"Unprotected"}

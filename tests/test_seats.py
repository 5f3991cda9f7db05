"""`saas-backup-exporter seats list|change` against the simulator over a real socket: what is
listed, the dry run's plan, applying it in batches of at most 100, idempotent re-runs, and both
request styles of bulkSeatChange."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.config import ConfigError, build_config
from exporter.simulator.world import Shape
from exporter.vendors.datto.settings import DattoSettings
from tests.test_seats_support import CANARY, add_seats, seats, set_states, table, vendor

# Datto's words, live (seatState) and spec (licenseStatus), as the metrics normalize them.
STATES = {
    "Active": "licensed",
    "Paused": "paused",
    "Unprotected": "unlicensed",
    "Archived": "archived",
}
SPEC_WORDS = {
    "Active": "Licensed",
    "Paused": "Paused",
    "Unprotected": "Unlicensed",
    "Archived": "Archived",
}


@pytest.mark.parametrize("shape", ["live", "spec"])
def test_list_reports_the_seats_in_the_metrics_states(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: Shape
) -> None:
    with vendor(tmp_path, shape=shape) as v:
        customer = v.customer()
        add_seats(customer, 2)
        add_seats(customer, 1, state="Paused", seat_type="SharedMailbox")
        run = seats(capsys, v, "list", "--customer", customer.id, "--output", "json")
        assert run.code == 0, run.err
        document = json.loads(run.out)
        assert document["customer"]["id"] == str(customer.id)
        assert document["customer"]["name"] in (customer.name, customer.domain)
        words = SPEC_WORDS if shape == "spec" else {k: k for k in STATES}
        assert sorted(
            (s["id"], s["type"], s["state"], s["vendor_state"]) for s in document["seats"]
        ) == sorted(
            (s.remote_id, s.seat_type, STATES[s.state], words[s.state]) for s in customer.seats
        )

        # By name (any case), only unlicensed seats, as CSV.
        run = seats(
            capsys,
            v,
            "list",
            "--customer",
            customer.domain.upper(),
            "--state",
            "unlicensed",
            "--output",
            "csv",
        )
        assert run.code == 0, run.err
        rows = list(csv.DictReader(io.StringIO(run.out)))
        assert {r["id"] for r in rows} == {
            s.remote_id for s in customer.seats if s.state == "Unprotected"
        }
        assert {r["state"] for r in rows} == {"unlicensed"}

        # A seat type as the metrics label it, as a table with a count per state.
        run = seats(capsys, v, "list", "--customer", customer.id, "--type", "shared_mailbox")
        assert run.code == 0, run.err
        mailboxes = [s for s in customer.seats if s.seat_type == "SharedMailbox"]
        assert set(table(run.out)) == {s.remote_id for s in mailboxes}
        assert f"{len(mailboxes)} seats:" in run.out


def test_a_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        ids = add_seats(customer, 3)
        before = [s.state for s in customer.seats]
        run = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.name,
            "--action",
            "license",
            "--where",
            "state=unlicensed",
        )
        assert run.code == 0, run.err
        assert v.puts() == []
        assert [s.state for s in customer.seats] == before
        rows = table(run.out)
        assert set(rows) == set(ids)
        for seat_id in ids:
            assert rows[seat_id].split()[-3:] == ["unlicensed", "->", "licensed"]
        assert "3 seats selected: 3 to change in 1 request " in run.out
        assert (
            "request style live: PUT /v1/saas/{saasCustomerId}/{externalSubscriptionId}"
            "/bulkSeatChange with {seat_type, action_type, ids}" in run.out
        )
        assert "dry run: nothing was changed; add --apply" in run.out


@pytest.mark.parametrize(("count", "sizes"), [(100, [100]), (101, [100, 1]), (250, [100, 100, 50])])
def test_apply_sends_batches_of_at_most_100_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: int, sizes: list[int]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        ids = add_seats(customer, count)
        args = ("--customer", customer.id, "--action", "license", "--where", "state=unlicensed")
        plan = seats(capsys, v, "change", *args)
        requests = f"{len(sizes)} request" + ("s" if len(sizes) > 1 else "")
        assert f"{count} seats selected: {count} to change in {requests} " in plan.out

        run = seats(capsys, v, "change", *args, "--apply")
        assert run.code == 0, run.err
        assert [len(change.entries) for change in v.changes.log] == sizes
        assert len(v.puts()) == len(sizes)
        sent = [e.remote_id for change in v.changes.log for e in change.entries]
        assert sorted(sent) == sorted(ids)
        assert {(e.action, e.seat_type) for c in v.changes.log for e in c.entries} == {
            ("License", "User")
        }
        assert set(v.states(customer, ids)) == {"Active"}
        assert f"changed {count}, skipped 0, failed 0, not yet confirmed 0, not sent 0" in run.out
        assert all(
            line.endswith("confirmed by reading the seats again")
            for line in table(run.out).values()
        )


def test_a_rerun_skips_what_is_done_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        first = add_seats(customer, 3)
        args = ("--customer", customer.id, "--action", "license", "--ids", ",".join(first))
        assert seats(capsys, v, "change", *args, "--apply").code == 0
        assert len(v.puts()) == 1

        again = seats(capsys, v, "change", *args, "--apply")
        assert again.code == 0, again.err
        assert len(v.puts()) == 1, "nothing is sent again"
        assert "nothing to change" in again.out
        assert all(line.endswith("skip: already licensed") for line in table(again.out).values())

        # Some done, some not: only those are sent, the others reported as skipped.
        more = add_seats(customer, 2)
        ids = ",".join([*first, *more])
        mixed = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.id,
            "--action",
            "license",
            "--ids",
            ids,
            "--apply",
        )
        assert mixed.code == 0, mixed.err
        assert [e.remote_id for e in v.changes.log[-1].entries] == more
        rows = table(mixed.out)
        assert all(" skipped " in rows[i] for i in first)
        assert all(" changed " in rows[i] for i in more)
        assert "changed 2, skipped 3, failed 0" in mixed.out


@pytest.mark.parametrize(
    ("shape", "style"), [("live", "live"), ("spec", "spec"), ("mixed", "live"), ("mixed", "spec")]
)
def test_both_request_styles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: Shape, style: str
) -> None:
    with vendor(tmp_path, shape=shape, style=style) as v:
        customer = v.customer()
        ids = add_seats(customer, 3, state="Active")
        run = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.id,
            "--action",
            "pause",
            "--ids",
            ",".join(ids),
            "--apply",
        )
        assert run.code == 0, run.err
        segment = customer.external_subscription_id if style == "live" else "externalSubscriptionId"
        assert [r.path for r in v.puts()] == [f"/v1/saas/{customer.id}/{segment}/bulkSeatChange"]
        assert [c.style for c in v.changes.log] == [style]
        assert v.states(customer, ids) == ["Paused"] * 3
        assert f"request style {style}: PUT" in run.out
        assert f"(1 request, request style {style})" in run.out
        # The spec answers per seat; the live answer says nothing, so the seats are read again.
        message = (
            "Seat paused successfully"
            if style == "spec"
            else "confirmed by reading the seats again"
        )
        assert all(line.endswith(message) for line in table(run.out).values())


@pytest.mark.parametrize(("shape", "style"), [("live", "spec"), ("spec", "live")])
def test_the_wrong_style_for_the_vendor_is_refused_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: Shape, style: str
) -> None:
    with vendor(tmp_path, shape=shape, style=style) as v:
        customer = v.customer()
        ids = add_seats(customer, 3)
        run = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.id,
            "--action",
            "license",
            "--ids",
            ",".join(ids),
            "--apply",
        )
        assert run.code == 1
        assert "HTTP 404" in run.out + run.err
        assert f"seat_change_style: {style}?" in run.out + run.err
        assert v.changes.log == []
        assert v.states(customer, ids) == ["Unprotected"] * 3
        assert "failed 3" in run.out


def audit_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "logger=exporter.seats.audit" in line]


def test_each_request_leaves_an_audit_line_without_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        ids = add_seats(customer, 150)
        run = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.id,
            "--action",
            "license",
            "--where",
            "state=unlicensed",
            "--apply",
        )
        assert run.code == 0, run.err
        requests = [line for line in audit_lines(run.err) if 'msg="seat change request"' in line]
        assert len(requests) == 2
        for number, (line, batch) in enumerate(zip(requests, (ids[:100], ids[100:]), strict=True)):
            assert " who=" in line
            assert "@" in line.split(" who=")[1].split()[0]
            assert line.startswith("ts=20")
            assert f"customer_id={customer.id} action=license seat_type=User" in line
            assert f"request={number + 1}/2 seats={len(batch)} outcome=accepted" in line
            assert line.endswith("ids=" + ",".join(batch))
        confirmed = [line for line in audit_lines(run.err) if "seat change confirmation" in line]
        assert len(confirmed) == 1
        assert 'unconfirmed=""' in confirmed[0]

        # Whatever the log level, the audit trail is written; in JSON as well.
        more = add_seats(customer, 1)
        args = ("--customer", customer.id, "--action", "license", "--ids", more[0], "--apply")
        quiet = seats(capsys, v, "change", *args, "--log.level", "error", "--log.format", "json")
        assert quiet.code == 0, quiet.err
        [line] = [json.loads(x) for x in quiet.err.splitlines() if "seat change request" in x]
        assert line["logger"] == "exporter.seats.audit"
        assert (line["customer_id"], line["action"], line["ids"]) == (
            str(customer.id),
            "license",
            more[0],
        )
        assert "who" in line


def test_as_a_user_runs_it(tmp_path: Path) -> None:
    """A real process, as from a shell: the plan on stdout, exit 0, nothing changed."""
    with vendor(tmp_path) as v:
        customer = v.customer()
        ids = add_seats(customer, 2)
        argv = ["seats", "change", "--config.file", str(v.config), "--source", "datto"]
        argv += ["--customer", str(customer.id), "--action", "license", "--ids", ",".join(ids)]
        done = subprocess.run(
            [sys.executable, "-m", "exporter", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "2 seats selected: 2 to change in 1 request " in done.stdout
        assert "dry run: nothing was changed" in done.stdout
        assert v.puts() == []
        assert CANARY not in done.stdout + done.stderr


def test_the_readme_config_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Seat management\n", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in section.split("```yaml\n")[1:] if "seat_change_style" in b)
    document = yaml.safe_load(block.split("```", 1)[0])
    key = tmp_path / "key"
    key.write_text(CANARY)
    for source in document["sources"]:
        source["private_key_file"] = str(key)
    config = build_config(document)
    [datto] = config.sources
    assert isinstance(datto, DattoSettings)
    assert (datto.seat_change_style, datto.seat_change_batch_size) == ("live", 100)
    for bad in ({"seat_change_style": "Live"}, {"seat_change_batch_size": 101}):
        with pytest.raises(ConfigError):
            build_config({"sources": [{**document["sources"][0], **bad}]})

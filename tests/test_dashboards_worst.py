"""The fleet's top row, its worst-first order and the customer detail's problem list, run by
promtool on a made-up fleet with known answers. Every series comes from two exporter replicas
(instances a and b), as in a high-availability pair: nothing may count twice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import promtool_test_rules
from tests.test_dashboards import bind, target_expr
from tests.test_dashboards_promql import promtool_instant

FLEET, CUSTOMER = "fleet-overview.json", "customer-detail.json"
NOW = 600  # promtool_instant evaluates at 10m
DAY = 86400


def labels(**found: str) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in found.items()) + "}"


def series(metric: str, value: float, **found: str) -> str:
    return f"{metric}{labels(**found)} {value}"


def customer(source: str, cid: str, up: float = 1) -> list[str]:
    key = {"source": source, "customer_id": cid}
    info = {**key, "customer_name": f"Customer {cid}", "domain": "", "product": "m365"}
    return [
        series("saas_backup_customer_info", 1, **info, status="active"),
        series("saas_backup_customer_up", up, **key),
    ]


def app(source: str, cid: str, application: str, metric: str, value: float, **more: str) -> str:
    return series(
        f"saas_backup_application_{metric}",
        value,
        source=source,
        customer_id=cid,
        application=application,
        **more,
    )


def seat(cid: str, seat_id: str, at: float) -> str:
    return series(
        "saas_backup_seat_last_backup_timestamp_seconds",
        at,
        source="datto",
        customer_id=cid,
        seat_id=seat_id,
        seat_type="user",
        license_state="licensed",
    )


FLEET_SERIES = [
    *(series("saas_backup_up", 1, source=s) for s in ("datto", "cloudally", "backupify")),
    *(
        series("saas_backup_customer_data_age_seconds", age, source=s, customer_id="x")
        for s, age in (("datto", 30), ("cloudally", 20), ("backupify", 10))
    ),
    # H: per-seat times, all fresh.
    *customer("datto", "H"),
    seat("H", "h1", 500),
    seat("H", "h2", 500),
    # S: one seat 25 h old, named; one seat without a name.
    *customer("datto", "S"),
    seat("S", "u1", NOW - 25 * 3600),
    seat("S", "u2", 500),
    series(
        "saas_backup_seat_info", 1, source="datto", customer_id="S", seat_id="u1", seat_name="Alice"
    ),
    # M, live Datto: 3 of 10 services missed in the last day; fully protected 100 s ago.
    *customer("datto", "M"),
    app("datto", "M", "Exchange", "services", 10, state="active"),
    app("datto", "M", "Exchange", "services", 7, state="backed_up"),
    app("datto", "M", "Exchange", "last_fully_protected_timestamp_seconds", 500),
    # O, live Datto: every service backed up, but last fully protected four days ago.
    *customer("datto", "O"),
    app("datto", "O", "Exchange", "services", 5, state="active"),
    app("datto", "O", "Exchange", "services", 5, state="backed_up"),
    app("datto", "O", "Exchange", "last_fully_protected_timestamp_seconds", NOW - 4 * DAY),
    # L, live Datto and healthy.
    *customer("datto", "L"),
    app("datto", "L", "Exchange", "services", 5, state="active"),
    app("datto", "L", "Exchange", "services", 5, state="backed_up"),
    app("datto", "L", "Exchange", "last_fully_protected_timestamp_seconds", 500),
    # F: gmail's newest backup failed (and is its oldest: not a backup); drive fresh.
    *customer("cloudally", "F"),
    app("cloudally", "F", "gmail", "last_backup_status", 1, status="failed"),
    app("cloudally", "F", "gmail", "last_backup_timestamp_seconds", NOW - 3 * DAY),
    app("cloudally", "F", "drive", "last_backup_status", 1, status="success"),
    app("cloudally", "F", "drive", "last_backup_timestamp_seconds", 500),
    # P: its only application paused at the vendor, with an old backup: judged by nothing.
    *customer("cloudally", "P"),
    app("cloudally", "P", "ms365", "last_backup_status", 1, status="success"),
    app("cloudally", "P", "ms365", "last_backup_timestamp_seconds", NOW - 9 * DAY),
    app("cloudally", "P", "ms365", "enabled", 0),
    # U: unreadable.
    *customer("cloudally", "U", up=0),
    # B: its instance's newest backup failed 50 s ago; its last success 50,000 s before.
    *customer("backupify", "B"),
    series(
        "saas_backup_last_backup_end_timestamp_seconds",
        550,
        source="backupify",
        customer_id="B",
        instance_id="i1",
        status="failed",
    ),
    series(
        "saas_backup_instance_last_success_timestamp_seconds",
        NOW - 50600,
        source="backupify",
        customer_id="B",
        instance_id="i1",
    ),
    series(
        "saas_backup_backup_instance_info",
        1,
        source="backupify",
        customer_id="B",
        instance_id="i1",
        instance_name="Mail",
        definition="",
    ),
    # R: a restore that failed an hour ago, and one two days ago (out of the window).
    *customer("backupify", "R"),
    *(
        series(
            "saas_backup_restore_job_end_timestamp_seconds",
            at,
            source="backupify",
            customer_id="R",
            job_id=job,
            type="restore",
            status="failed",
        )
        for job, at in (("j1", NOW - 3600), ("j2", NOW - 2 * DAY))
    ),
]


def replicated(lines: list[str]) -> list[str]:
    """Each series as two exporter replicas scrape it."""
    return [
        line.replace("{", '{job="saas-backup", instance="' + instance + '", ', 1)
        for line in lines
        for instance in ("a", "b")
    ]


def check(tmp_path: Path, expected: dict[str, Any], lines: list[str]) -> None:
    path = tmp_path / "worst.test.yml"
    path.write_text(yaml.safe_dump(promtool_instant(expected, replicated(lines))))
    result = promtool_test_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def key(level: int, age: float) -> float:
    """The sort key as the fleet table computes it, in thousandths (promtool compares exactly)."""
    return round(1000 * (level + math.atan(age / DAY) / math.pi))


def fleet(title: str, ref: str = "A", source: str = ".*") -> str:
    return bind(target_expr(FLEET, title, ref), source=source)


def one(value: float) -> list[dict[str, Any]]:
    return [{"labels": "{}", "value": value}]


@pytest.mark.tools
def test_top_row_counts_each_problem_once(tmp_path: Path) -> None:
    expected = {
        fleet("Sources"): [
            {"labels": labels(source=s), "value": 1} for s in ("datto", "cloudally", "backupify")
        ],
        fleet("Data age"): [
            {"labels": labels(source=s), "value": a}
            for s, a in (("datto", 30), ("cloudally", 20), ("backupify", 10))
        ],
        fleet("Unreadable customers"): one(1),
        # S (a stale seat), M, O (live Datto), F, B (failed), U (unreadable), R (failed restore).
        fleet("Customers needing attention"): one(7),
        fleet("Failed backups"): one(2),
        fleet("Failed restores, 24 h"): one(1),
        fleet("Customers"): one(10),
        # A real 0 where the sources chosen are up and have nothing to count.
        fleet("Unreadable customers", source="datto"): one(0),
        fleet("Failed restores, 24 h", source="datto"): one(0),
        # Nothing reports for a source that is not there: nothing, not 0.
        fleet("Failed backups", source="nowhere"): [],
    }
    check(tmp_path, expected, FLEET_SERIES)


@pytest.mark.tools
def test_top_row_is_unknown_while_a_source_is_down(tmp_path: Path) -> None:
    down = [
        line.replace(" 1", " 0") if 'saas_backup_up{source="datto"}' in line else line
        for line in FLEET_SERIES
    ]
    assert down != FLEET_SERIES
    expected = {
        fleet("Sources"): [
            {"labels": labels(source="datto"), "value": 0},
            {"labels": labels(source="cloudally"), "value": 1},
            {"labels": labels(source="backupify"), "value": 1},
        ],
        # Datto's last data cannot vouch for a 0; the failures elsewhere still show.
        fleet("Unreadable customers"): one(1),
        fleet("Failed restores, 24 h", source="datto|cloudally"): [],
        fleet("Unreadable customers", source="datto"): [],
        fleet("Customers needing attention", source="datto"): one(3),
        # Sources that are up keep their real 0.
        fleet("Failed restores, 24 h", source="cloudally"): one(0),
    }
    check(tmp_path, expected, down)


@pytest.mark.tools
def test_worst_first_counts_live_datto_and_not_failed_backups(tmp_path: Path) -> None:
    def row(cid: str, source: str, value: float) -> dict[str, Any]:
        info = {"source": source, "customer_id": cid, "customer_name": f"Customer {cid}"}
        return {"labels": labels(**info, product="m365", status="active"), "value": value}

    state = f"round(1000 * (\n{fleet('Customers, worst first', 'A')}\n))"
    worst = fleet("Customers, worst first", "B")
    expected = {
        state: [
            row("B", "backupify", key(4, 50600)),
            row("F", "cloudally", key(4, 100)),
            row("U", "cloudally", key(3, 0)),
            row("O", "datto", key(2, 4 * DAY)),
            row("S", "datto", key(2, 25 * 3600)),
            row("M", "datto", key(2, 100)),
            row("R", "backupify", key(4, 0)),
            row("H", "datto", key(0, 100)),
            row("L", "datto", key(0, 100)),
            row("P", "cloudally", key(0, 0)),
        ],
        # Failed backups are not backups: F's is its drive's, B's its last success; P's paused
        # application is not judged.
        worst: [
            row("B", "backupify", 50600),
            row("F", "cloudally", 100),
            row("O", "datto", 4 * DAY),
            row("S", "datto", 25 * 3600),
            row("M", "datto", 100),
            row("H", "datto", 100),
            row("L", "datto", 100),
        ],
    }
    check(tmp_path, expected, FLEET_SERIES)
    # The live Datto customers with a problem rank above every healthy customer.
    ranked = sorted(expected[state], key=lambda r: -r["value"])
    order = [r["labels"].split('customer_id="')[1][0] for r in ranked]
    assert order.index("O") < order.index("H")
    assert order.index("M") < order.index("L")


def problem(cid: str, source: str, value: float, **found: str) -> dict[str, Any]:
    return {"labels": labels(source=source, customer_id=cid, **found), "value": value}


@pytest.mark.tools
def test_problem_list_names_the_seats_and_applications(tmp_path: Path) -> None:
    def detail(ref: str, cid: str) -> str:
        return bind(target_expr(CUSTOMER, "Problems", ref), source=".*", customer=cid)

    alice = {"kind": "seat", "problem": "not backed up for 24 h", "item": "Alice", "item_id": "u1"}
    missed = {"kind": "application", "problem": "services not backed up in the last day"}
    old = {"kind": "application", "problem": "not fully protected for 72 h", "item": "Exchange"}
    mail = {"kind": "backup", "problem": "newest backup failed", "item": "Mail", "item_id": "i1"}
    gmail = {"kind": "application", "problem": "newest backup failed", "item": "gmail"}
    restore = {"kind": "restore", "problem": "failed in the last 24 h"}
    expected = {
        detail("A", "S"): [problem("S", "datto", 2, **alice)],
        detail("B", "S"): [problem("S", "datto", 25 * 3600, **alice)],
        detail("A", "M"): [problem("M", "datto", 2, **missed, item="Exchange")],
        detail("C", "M"): [problem("M", "datto", 3, **missed, item="Exchange")],
        detail("A", "O"): [problem("O", "datto", 2, **old)],
        detail("B", "O"): [problem("O", "datto", 4 * DAY, **old)],
        detail("A", "B"): [problem("B", "backupify", 4, **mail)],
        detail("B", "B"): [problem("B", "backupify", 50, **mail)],
        # Its failed backup is also its newest finished one, three days old: stale too.
        detail("A", "F"): [
            problem("F", "cloudally", 4, **gmail),
            problem("F", "cloudally", 2, **gmail | {"problem": "no finished backup for 48 h"}),
        ],
        detail("A", "U"): [
            problem("U", "cloudally", 3, kind="customer", problem="could not be read")
        ],
        detail("A", "R"): [
            problem("R", "backupify", 4, **restore, item="restore j1", item_id="j1")
        ],
        detail("A", "H"): [],
        detail("A", "L"): [],
        detail("A", "P"): [],
    }
    check(tmp_path, expected, FLEET_SERIES)

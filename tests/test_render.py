"""Golden exposition files: the same records always render the same bytes."""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from exporter.budget import BudgetView
from exporter.config import MetricsConfig
from exporter.crawl import CrawlView
from exporter.exposition import Exposition, _Static, gzip_join, wants_gzip, wants_openmetrics
from exporter.http import ApiStats
from exporter.model import (
    ApplicationBackup,
    BackupInstance,
    Customer,
    RestoreJob,
    Seat,
    Snapshot,
)
from exporter.refresh import SourceState
from exporter.render import render
from exporter.source import Part
from tests.conftest import promtool_check_metrics

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_780_000_000.0
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


class _OfCustomer(Protocol):
    @property
    def customer_id(self) -> str: ...


R = TypeVar("R", bound=_OfCustomer)


def _of(records: tuple[R, ...], customer_id: str) -> tuple[R, ...]:
    return tuple(r for r in records if r.customer_id == customer_id)


def parts_of(snapshot: Snapshot, oldest: Mapping[str, float] | None = None) -> dict[str, Part]:
    """The snapshot split into one part per customer, in its customers' order; a customer's
    oldest data defaults to the snapshot's."""
    records: tuple[_OfCustomer, ...] = (
        *snapshot.seats,
        *snapshot.applications,
        *snapshot.instances,
        *snapshot.active_backups,
        *snapshot.finished_backups,
        *snapshot.restore_jobs,
    )
    assert {r.customer_id for r in records} <= {c.id for c in snapshot.customers}
    parts = {}
    for customer in snapshot.customers:
        cid = customer.id
        error = snapshot.customer_errors.get(cid)
        mine = Snapshot(
            customers=(customer,),
            seats=_of(snapshot.seats, cid),
            applications=_of(snapshot.applications, cid),
            instances=_of(snapshot.instances, cid),
            active_backups=_of(snapshot.active_backups, cid),
            finished_backups=_of(snapshot.finished_backups, cid),
            restore_jobs=_of(snapshot.restore_jobs, cid),
            customer_errors={cid: error} if error else {},
        )
        when = (oldest or {}).get(cid, snapshot.oldest_data)
        parts[cid] = Part(cid, mine, when, float("inf"), error)
    return parts


def states() -> list[SourceState]:
    stats = ApiStats()
    stats.requests["domains", "200"] = 3
    stats.requests["seats", "504"] = 2
    stats.requests["seats", "200"] = 5
    stats.limit_cost["seats"] += 15
    stats.limit_remaining = 4321
    stats.limit_resets = NOW + 1800
    stats.parse_errors = 2
    snapshot = Snapshot(
        customers=(
            Customer(
                "1002",
                'Fabrikam "Schools"',
                "fabrikam.edu",
                "google_workspace",
                "inactive",
                seats_used=3,
                services_active=9,
                services_recently_backed_up=4,
                backup_ratio=0.444,
            ),
            Customer(
                "1001",
                "Contoso Dental",
                "contoso.onmicrosoft.com",
                "microsoft_365",
                "active",
                seats_used=4,
            ),
        ),
        seats=(
            Seat("1001", "s-b", "Bob", "user", "licensed", NOW - 3600, True),
            Seat("1001", "s-a", "Ada", "user", "licensed", None, True),
            Seat(
                "1001", "s-c", "Reception\\Desk", "shared_mailbox", "paused", NOW - 9 * 86400, True
            ),
            Seat("1001", "s-d", "Drive", "shared_drive", "archived", None, False),
        ),
        applications=(
            ApplicationBackup("1001", "Office365Exchange", NOW - 7200, "success", 4, 4, 3),
            ApplicationBackup("1001", "OneDrive", None, "running", 4, None, None),
        ),
        customer_errors={"1002": "seats: GET /v1/saas/1002/seats: HTTP 504"},
        oldest_data=NOW - 90,
    )
    up = SourceState(
        "datto",
        "datto",
        stats,
        generation=3,
        parts=parts_of(snapshot, {"1002": NOW - 45}),
        listed=True,
        up=True,
        refreshed=True,
        last_success=NOW - 60,
        last_attempt=NOW - 62,
        duration=1.25,
        crawl=CrawlView(
            running=True, total=5, read=2, failed=1, started=NOW - 20, last_progress=NOW - 4
        ),
        budget=BudgetView(
            remaining=420, allowed_per_hour=900, planned_per_hour=1200, cover_seconds=7200
        ),
    )
    down = SourceState(
        "datto-eu",
        "datto",
        ApiStats(),
        generation=1,
        up=False,
        refreshed=True,
        last_attempt=NOW - 5,
        duration=0.5,
        error="HTTP 401",
        budget=BudgetView(None, 900, None, None),
    )
    return [up, down, live()]


def live() -> SourceState:
    """The signals the vendors' live APIs add: daily windows, storage, billable seats, instance
    schedules and export records."""
    snapshot = Snapshot(
        customers=(
            Customer(
                "7", "Tailspin", "tailspin.example", "microsoft_365", "active", used_bytes=5e9
            ),
        ),
        seats=(
            Seat("7", "u-1", "Una", "user", "licensed", billable=True),
            Seat("7", "u-2", "Ugo", "user", "unlicensed", billable=False),
            Seat("7", "u-3", "Uma", "user", "paused", billable=True),
        ),
        applications=(
            ApplicationBackup(
                "7",
                "Office365Exchange",
                None,
                "partial",
                81,
                74,
                70,
                services_uningested=2,
                last_fully_protected=NOW - 10 * 86400,
                used_bytes=4e9,
            ),
            ApplicationBackup(
                "7",
                "sharepoint_multi",
                NOW - 3 * 86400,
                "failed",
                used_bytes=7355928.0,
                enabled=False,
                next_backup="In 7 hours",
            ),
        ),
        instances=(
            BackupInstance("7", "701", "Office 365", "Office 365", NOW - 86400, 86400.0),
            BackupInstance("7", "702", "Google Apps", "Google Apps", None, None),
        ),
        restore_jobs=(RestoreJob("e-1", "7", "export", "failed", NOW - 7200, NOW - 3600, 120, 3),),
        oldest_data=NOW - 30,
    )
    return SourceState(
        "live",
        "mixed",
        ApiStats(),
        1,
        parts_of(snapshot),
        listed=True,
        up=True,
        refreshed=True,
        last_success=NOW - 30,
    )


@pytest.mark.parametrize(
    ("name", "openmetrics", "config"),
    [
        ("datto.prom", False, MetricsConfig()),
        ("datto.om", True, MetricsConfig()),
        ("datto-capped.prom", False, MetricsConfig(max_seat_series=2)),
        ("datto-no-seats.prom", False, MetricsConfig(per_seat_series=False)),
    ],
)
def test_golden(name: str, openmetrics: bool, config: MetricsConfig) -> None:
    body = render(states(), config, NOW, openmetrics=openmetrics)
    assert render(list(reversed(states())), config, NOW, openmetrics=openmetrics) == body, (
        "output must not depend on input order"
    )
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(body)
    assert body == path.read_bytes(), f"{name} drifted; rerun with UPDATE_GOLDEN=1 and review"


def test_golden_files_pass_promtool() -> None:
    for name in ("datto.prom", "datto-capped.prom", "datto-no-seats.prom"):
        promtool_check_metrics((GOLDEN / name).read_bytes())


def test_capping_keeps_the_oldest_licensed_seats() -> None:
    body = render(states(), MetricsConfig(max_seat_series=2), NOW).decode()
    assert 'saas_backup_seat_info{customer_id="1001",seat_id="s-a"' in body.replace(
        'source="datto",', ""
    )
    assert 'seat_id="s-b"' in body
    assert 'seat_id="s-c"' not in body
    assert 'saas_backup_seat_series_dropped{source="datto"} 2.0' in body


def test_gzip_join_is_one_valid_member() -> None:
    static = _Static(b"# HELP a b\n" * 1000)
    tail = b"tail 1.0\n"
    joined = gzip_join(static, tail)
    assert gzip.decompress(joined) == static.body + tail
    assert gzip_join(static, b"")
    assert gzip.decompress(gzip_join(static, b"")) == static.body


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("br", False),
        (None, False),
        ("GZIP", True),
    ],
)
def test_wants_gzip(header: str | None, wanted: bool) -> None:
    assert wants_gzip(header) is wanted


def test_wants_openmetrics() -> None:
    assert wants_openmetrics("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert not wants_openmetrics("text/plain")
    assert not wants_openmetrics(None)


def test_exposition_renders_once_per_generation() -> None:
    exposition = Exposition(MetricsConfig())
    first = exposition.body(states(), NOW, openmetrics=False, gzip=False)
    second = exposition.body(states(), NOW + 10, openmetrics=False, gzip=True)
    assert exposition.renders == 1
    assert b'saas_backup_cache_age_seconds{source="datto"} 90.0' in first.content
    assert b'saas_backup_cache_age_seconds{source="datto"} 100.0' in gzip.decompress(second.content)

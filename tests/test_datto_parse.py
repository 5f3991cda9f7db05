"""The Datto parsers on both shapes: the spec's own examples and what the live API returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.http import VendorError
from exporter.model import UNKNOWN
from exporter.parsing import Problems
from exporter.vendors.datto.parse import (
    fully_protected,
    license_state,
    parse_application_items,
    parse_domains,
    parse_seats,
)

FIXTURES = Path(__file__).parent / "fixtures"


def spec_examples() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FIXTURES / "datto-spec-examples.yaml").read_text())
    return data


def live() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "datto-live.json").read_text())
    return data


def test_spec_domains_example() -> None:
    problems = Problems()
    (customer,) = parse_domains(spec_examples()["domains"], problems)
    assert customer.id == "cust-001"
    assert customer.domain == "company.onmicrosoft.com"
    assert customer.status == "active"
    assert customer.name == "company.onmicrosoft.com"
    assert customer.seats_used is None
    assert problems.count == 0


def test_spec_seat_example_keeps_the_seat_and_drops_the_list_valued_email() -> None:
    body = spec_examples()["seats"]
    assert body["seats"][0]["email"] == ["email protected"], "the fixture must keep the quirk"
    problems = Problems()
    (seat,) = parse_seats(body, "cust-001", problems)
    assert seat.id == "user-abc123"
    assert seat.name == "John Smith"
    assert seat.seat_type == "user"
    assert seat.license_state == "licensed"
    assert seat.last_backup == 1776522600.0  # 2026-04-18T14:30:00Z
    assert seat.reports_backup_time
    assert problems.count == 1


def test_live_domains_bare_array_integer_ids_and_bad_records() -> None:
    problems = Problems()
    customers = parse_domains(live()["domains"], problems)
    assert [c.id for c in customers] == ["360466", "360467"]
    contoso, fabrikam = customers
    assert contoso.name == "Contoso Dental"
    assert contoso.product == "microsoft_365"
    assert contoso.status == UNKNOWN
    assert contoso.seats_used == 42
    assert contoso.services_active == 120
    assert contoso.services_recently_backed_up == 114
    assert contoso.backup_ratio == pytest.approx(0.95)
    assert fabrikam.product == "google_workspace"
    assert fabrikam.seats_used == 17
    assert fabrikam.services_active is None  # "n/a" dropped, the rest kept
    assert fabrikam.backup_ratio == pytest.approx(0.5)
    # The record without an id, the non-object and the "n/a" count.
    assert problems.count == 3


def test_live_seats() -> None:
    problems = Problems()
    seats = parse_seats(live()["seats"], "360466", problems)
    by_id = {s.id: s for s in seats}
    assert sorted(by_id) == ["a1b2", "c3d4", "e5f6", "g7h8", "i9j0"]
    assert by_id["a1b2"].license_state == "licensed"
    assert by_id["a1b2"].name == "Ada Lovelace"
    assert by_id["c3d4"].license_state == "paused"
    assert by_id["c3d4"].seat_type == "shared_mailbox"
    assert by_id["e5f6"].license_state == "archived"
    assert by_id["e5f6"].seat_type == "shared_drive"  # absent from the spec, kept
    assert by_id["g7h8"].license_state == "unlicensed"
    assert by_id["i9j0"].license_state == UNKNOWN
    assert by_id["i9j0"].seat_type == "hologram"
    assert all(s.last_backup is None and not s.reports_backup_time for s in seats)
    assert problems.count == 1  # the seat without remoteId


@pytest.mark.parametrize(
    ("value", "state"),
    [
        ("Licensed", "licensed"),
        ("Active", "licensed"),
        ("Unlicensed", "unlicensed"),
        ("Unprotected", "unlicensed"),
        ("Paused", "paused"),
        ("Archived", "archived"),
        ("archived", "archived"),
        ("Deleted", UNKNOWN),
        (None, UNKNOWN),
    ],
)
def test_license_states(value: str | None, state: str) -> None:
    assert license_state(value) == state


@pytest.mark.parametrize("body", [{"seats": "nope"}, {"items": []}, "text", 42, None])
def test_unexpected_seat_shapes_fail_the_customer_clearly(body: Any) -> None:
    with pytest.raises(VendorError, match=r"/v1/saas/7/seats: unexpected response shape"):
        parse_seats(body, "7", Problems())


def test_history_without_windows_is_read_as_backups_newest_first() -> None:
    problems = Problems()
    read = parse_application_items(
        live()["applications_without_windows"]["items"], "360466", problems, FETCHED
    )
    assert read.used_bytes == 123456789
    by_name = {a.application: a for a in read.applications}
    assert sorted(by_name) == ["Office365Exchange", "OneDrive", "Teams"]
    exchange = by_name["Office365Exchange"]
    assert exchange.last_backup == 1776517200.0
    assert exchange.status == "success"
    assert (exchange.services_active, exchange.services_backed_up, exchange.services_perfect) == (
        40,
        39,
        37,
    )
    onedrive = by_name["OneDrive"]
    # The newest run is still going: its status shows that, the time is the last finished one.
    assert onedrive.status == "running"
    assert onedrive.last_backup == 1776434400.0
    teams = by_name["Teams"]
    assert teams.status == UNKNOWN
    assert teams.last_backup == 1776434400.0
    assert problems.count == 1  # the garbage startTime


FETCHED = 1776515000.0


def test_live_daily_windows() -> None:
    problems = Problems()
    read = parse_application_items(live()["applications"]["items"], "360466", problems, FETCHED)
    assert read.used_bytes == 123456789
    by_name = {a.application: a for a in read.applications}
    # The application label is the vendor's appType as given.
    assert sorted(by_name) == [
        "Office365Exchange",
        "Office365OneDrive",
        "Office365SharePoint",
        "Office365Teams",
        "Office365Viva",
    ]
    exchange = by_name["Office365Exchange"]
    # "7 of 81 mailboxes not backed up in the last day": the Between0dAnd1d window's counts.
    assert (exchange.services_active, exchange.services_backed_up) == (81, 74)
    assert exchange.services_perfect == 70
    assert exchange.status == "partial"
    assert exchange.services_uningested == 0
    assert exchange.used_bytes == 100000000
    assert exchange.last_fully_protected == 1776513600.0 - 2 * 86400
    # Window bounds are never a last-backup time.
    assert all(a.last_backup is None for a in read.applications)

    onedrive = by_name["Office365OneDrive"]
    # Out of order: the window named Between0dAnd1d is the last day, not the first entry.
    assert (onedrive.services_active, onedrive.services_backed_up, onedrive.status) == (
        40,
        40,
        "success",
    )
    assert onedrive.services_uningested == 3
    # A bucket exports its bound: fetch time minus ten days, a lower bound of the age.
    assert (
        onedrive.last_fully_protected == 1776517200 - 10 * 86400
    )  # fetch time rounded up to the hour
    sharepoint = by_name["Office365SharePoint"]
    assert sharepoint.status == "pending"  # Insufficient History: a new tenant
    assert sharepoint.last_fully_protected == 1776517200 - 1 * 86400
    teams = by_name["Office365Teams"]
    assert teams.status == UNKNOWN  # a status word Datto has not been seen to use
    assert teams.last_fully_protected is None  # an unreadable bucket: no sample
    viva = by_name["Office365Viva"]
    # No Between0dAnd1d window at all: the first entry, the newest, stands in.
    assert (viva.services_active, viva.services_backed_up, viva.status) == (2, 2, "success")
    assert viva.last_fully_protected is None  # 12345 is no epoch-ms time
    assert problems.count == 2  # the unreadable bucket and the implausible number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1776513600000, 1776513600.0),
        ("1776513600000", 1776513600.0),
        # The fetch time rounded up to the hour (1776517200), minus the bucket's days.
        ("OVER_10_DAYS_AGO", 1776517200 - 10 * 86400),
        ("over_30_days_ago", 1776517200 - 30 * 86400),
        ("BETWEEN_1_AND_2_DAYS_AGO", 1776517200 - 86400),
        ("OVER_1_DAY_AGO", 1776517200 - 86400),
        ("YESTERDAY", None),
        ("", None),
        (True, None),
        (None, None),
    ],
)
def test_last_fully_protected_time(value: object, expected: float | None) -> None:
    problems = Problems()
    assert fully_protected(value, FETCHED, problems) == expected
    assert problems.count == (1 if expected is None and value not in (None, True) else 0)


def test_live_seats_billable() -> None:
    problems = Problems()
    seats = parse_seats(live()["seats"], "360466", problems)
    by_id = {s.id: s.billable for s in seats}
    assert by_id == {"a1b2": True, "c3d4": False, "e5f6": False, "g7h8": False, "i9j0": None}

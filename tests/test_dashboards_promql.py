"""The dashboards' trickiest PromQL, run by promtool on made-up series with known answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import promtool_test_rules
from tests.test_dashboards import bind, load, panels, target_expr


def seat_labels(source: str, customer: str, state: str) -> str:
    return f'source="{source}", customer_id="{customer}", seat_type="user", license_state="{state}"'


def seat_series(source: str, customer: str, times: list[int], state: str = "licensed") -> list[str]:
    labels = seat_labels(source, customer, state)
    return [
        f'saas_backup_seat_last_backup_timestamp_seconds{{{labels}, seat_id="{i}"}} {t}'
        for i, t in enumerate(times)
    ]


def count_series(metric: str, source: str, customer: str, n: int, state: str = "licensed") -> str:
    return f"{metric}{{{seat_labels(source, customer, state)}}} {n}"


def services(source: str, customer: str, active: int, recent: int) -> list[str]:
    labels = f'source="{source}", customer_id="{customer}"'
    return [
        f'saas_backup_customer_services{{{labels}, state="active"}} {active}',
        f'saas_backup_customer_services{{{labels}, state="backed_up_recently"}} {recent}',
    ]


FRESH, OLD = 500, -86000  # at the check's 10m: 100 s and 86,600 s ago
SEATS, NEVER = "saas_backup_seats", "saas_backup_seats_never_backed_up"
# Per customer: backed up of counted, and why.
MADE_UP_FLEET = [
    # timed/A: 8 of 10 backed up, 2 never; its 50 unlicensed seats count for nothing.
    count_series(SEATS, "timed", "A", 10),
    *seat_series("timed", "A", [FRESH] * 8),
    count_series(NEVER, "timed", "A", 2),
    count_series(SEATS, "timed", "A", 50, "unlicensed"),
    *seat_series("timed", "A", [OLD] * 3, "unlicensed"),
    # timed/B: 0 of 6, every seat never backed up, so no seat time at all.
    count_series(SEATS, "timed", "B", 6),
    count_series(NEVER, "timed", "B", 6),
    # fresh/D: 7 of 8 by its seats; its vendor's service counts are not needed.
    count_series(SEATS, "fresh", "D", 8),
    *seat_series("fresh", "D", [FRESH] * 7 + [OLD]),
    *services("fresh", "D", 100, 100),
    # datto/C, the live Datto shape: no per-seat state, so its services: 6 of 8.
    count_series(SEATS, "datto", "C", 40),
    *services("datto", "C", 8, 6),
    # backupify/E: seats only, no state of any kind: left out.
    count_series(SEATS, "backupify", "E", 5),
]


def promtool_instant(exprs: dict[str, Any], series: list[str]) -> dict[str, Any]:
    """A `promtool test rules` spec: each expression's samples at 10m over `series`, constant."""
    inputs = []
    for line in series:
        name_labels, value = line.rsplit(" ", 1)
        inputs.append({"series": name_labels, "values": f"{value}x10"})
    return {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "10m", "exp_samples": samples_}
                    for expr, samples_ in exprs.items()
                ],
            }
        ],
    }


@pytest.mark.tools
def test_backed_up_share_and_never_backed_up_on_a_made_up_fleet(tmp_path: Path) -> None:
    share = target_expr("fleet-overview.json", "Backed up in 24 h")
    never = target_expr("fleet-overview.json", "Never backed up")

    def on(expr: str, source: str) -> str:
        return bind(expr, source=source)

    expected = {
        # (8 + 0 + 7 + 6) / (10 + 6 + 8 + 8)
        on(share, ".*"): [{"labels": "{}", "value": 21 / 32}],
        on(never, ".*"): [{"labels": "{}", "value": 8}],
        # Seat times and none never backed up: a true 0.
        on(never, "fresh"): [{"labels": "{}", "value": 0}],
        # No per-seat state reported: no data, not a healthy-looking 0.
        on(never, "datto|backupify"): [],
    }
    path = tmp_path / "fleet.test.yml"
    path.write_text(yaml.safe_dump(promtool_instant(expected, MADE_UP_FLEET)))
    result = promtool_test_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # And the check can fail: customer B left out would read (8 + 7 + 6) / (10 + 8 + 8).
    wrong = {on(share, ".*"): [{"labels": "{}", "value": 21 / 26}]}
    path.write_text(yaml.safe_dump(promtool_instant(wrong, MADE_UP_FLEET)))
    result = promtool_test_rules(path)
    assert result.returncode != 0, result.stdout


@pytest.mark.tools
def test_an_application_with_no_finished_backup_is_listed_as_never(tmp_path: Path) -> None:
    """Its row carries the newest backup's status and a NaN time, which the column shows as
    "never". (`> bool 0` because promtool cannot expect a NaN: real times compare 1, NaN 0.)"""
    expr = bind(target_expr("customer-detail.json", "Applications"), source=".*", customer=".*")
    app = 'source="s", customer_id="1", application'
    series = [
        f'saas_backup_application_last_backup_timestamp_seconds{{{app}="mail"}} 500',
        f'saas_backup_application_last_backup_status{{{app}="mail", status="success"}} 1',
        f'saas_backup_application_last_backup_status{{{app}="teams", status="running"}} 1',
    ]
    expected = [
        {"labels": f'{{{app}="mail", status="success"}}', "value": 1},
        {"labels": f'{{{app}="teams", status="running"}}', "value": 0},
    ]
    path = tmp_path / "applications.test.yml"
    path.write_text(yaml.safe_dump(promtool_instant({f"({expr}) > bool 0": expected}, series)))
    result = promtool_test_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    table = next(p for p in panels(load("customer-detail.json")) if p["title"] == "Applications")
    (override,) = [
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Last backup"
    ]
    mappings = next(p["value"] for p in override["properties"] if p["id"] == "mappings")
    assert {
        "type": "special",
        "options": {"match": "nan", "result": {"color": "red", "index": 0, "text": "never"}},
    } in mappings


def application_series(
    customer: str, application: str, exporter: str = "e:1", **counts: float
) -> list[str]:
    labels = (
        f'source="datto", customer_id="{customer}", application="{application}", '
        f'job="saas-backup", instance="{exporter}"'
    )
    return [
        f'saas_backup_application_services{{{labels}, state="{state}"}} {n}'
        for state, n in counts.items()
    ]


def customer_info(customer: str, name: str) -> str:
    return (
        f'saas_backup_customer_info{{source="datto", customer_id="{customer}", '
        f'customer_name="{name}", domain="", product="microsoft_365", status="active"}} 1'
    )


# Per application, active services and those backed up in the last day; c1 is served by two
# exporters, which must count once.
MADE_UP_APPLICATIONS = [
    *application_series("c1", "Exchange", active=81, backed_up=74, uningested=3),
    *application_series("c1", "Exchange", "e:2", active=81, backed_up=74, uningested=3),
    *application_series("c1", "OneDrive", active=20, backed_up=20),
    # Paused at the vendor: not expected to back up, so not counted as missed.
    *application_series("c1", "SharePoint", active=5, backed_up=0),
    'saas_backup_application_enabled{source="datto", customer_id="c1", application="SharePoint"} 0',
    'saas_backup_application_last_fully_protected_timestamp_seconds{source="datto", '
    'customer_id="c1", application="Exchange"} -259000',
    'saas_backup_application_last_fully_protected_timestamp_seconds{source="datto", '
    'customer_id="c1", application="OneDrive"} 500',
    'saas_backup_customer_used_bytes{source="datto", customer_id="c1"} 123456789',
    customer_info("c1", "Contoso Dental"),
    *application_series("c2", "Exchange", active=10, backed_up=9),
    customer_info("c2", "Trey Motors"),
]


@pytest.mark.tools
def test_services_not_backed_up_per_application_on_a_made_up_fleet(tmp_path: Path) -> None:
    customer, fleet = "customer-detail.json", "fleet-overview.json"

    def on(expr: str, customer: str = "c1", source: str = "datto") -> str:
        return bind(expr, source=source, customer=customer)

    def app(customer: str, application: str, **more: str) -> str:
        labels = {"source": "datto", "customer_id": customer, "application": application, **more}
        return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"

    table = "Application protection"
    missed_rows = "Services not backed up in the last day"
    expected = {
        # 81 - 74 of Exchange, 0 of OneDrive; SharePoint is paused.
        on(target_expr(customer, table, "C")): [
            {"labels": app("c1", "Exchange"), "value": 7},
            {"labels": app("c1", "OneDrive"), "value": 0},
        ],
        on(target_expr(customer, "Services not backed up")): [{"labels": "{}", "value": 7}],
        on(target_expr(customer, "Services not backed up"), ".*"): [{"labels": "{}", "value": 8}],
        on(target_expr(customer, "Uningested services")): [{"labels": "{}", "value": 3}],
        # At the check's 10m: 259,600 s and 100 s ago.
        on(target_expr(customer, table, "F")): [
            {"labels": app("c1", "Exchange"), "value": 259600},
            {"labels": app("c1", "OneDrive"), "value": 100},
        ],
        on(target_expr(customer, "Used storage")): [{"labels": "{}", "value": 123456789}],
        # The fleet lists only applications with services missed, by customer name.
        on(target_expr(fleet, missed_rows, "A"), source=".*"): [
            {"labels": app("c1", "Exchange", customer_name="Contoso Dental"), "value": 7},
            {"labels": app("c2", "Exchange", customer_name="Trey Motors"), "value": 1},
        ],
        on(target_expr(fleet, missed_rows, "B"), source=".*"): [
            {"labels": app("c1", "Exchange", customer_name="Contoso Dental"), "value": 81},
            {"labels": app("c2", "Exchange", customer_name="Trey Motors"), "value": 10},
        ],
    }
    path = tmp_path / "applications.test.yml"
    path.write_text(yaml.safe_dump(promtool_instant(expected, MADE_UP_APPLICATIONS)))
    result = promtool_test_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # And the check can fail: the two exporters counted twice would read 14 of 162.
    wrong = {on(target_expr(customer, "Services not backed up")): [{"labels": "{}", "value": 14}]}
    path.write_text(yaml.safe_dump(promtool_instant(wrong, MADE_UP_APPLICATIONS)))
    assert promtool_test_rules(path).returncode != 0

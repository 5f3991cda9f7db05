"""The shipped rules and Alertmanager config: generated from alerts/, valid, unit-tested, and
complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import generate, rules
from alerts.thresholds import SCRAPE_GAP_MINUTES
from tests.conftest import promtool_test_rules, require_tool

ROOT = Path(__file__).parent.parent
RULES = ROOT / "alerts" / "saas-backup.rules.yml"
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
ALERTMANAGER = ROOT / "deploy" / "alertmanager.yml"
# How a description looks a customer's display name up.
CUSTOMER_LOOKUP = "saas_backup_customer_info{source=%q,customer_id=%q}"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SERIES = re.compile(r"(?P<name>[a-zA-Z_:][\w:]*)\{(?P<labels>.*)\}")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def names() -> set[str]:
    return {rule["alert"] for rule in alerts()}


def seconds(duration: str) -> int:
    """A Prometheus duration ("90m", "1d", "1h30m") in seconds."""
    parts = re.findall(r"(\d+)([smhdw])", duration)
    assert parts, duration
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(int(number) * UNITS[unit] for number, unit in parts)


@cache
def cases() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every promtool test case, as ("file#index", case)."""
    return tuple(
        (f"{path.name}#{index}", case)
        for path in RULE_TESTS
        for index, case in enumerate(yaml.safe_load(path.read_text())["tests"])
    )


def firing(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every alert that a promtool check expects of the alert `name`, with its test case."""
    return [
        (case, alert)
        for _, case in cases()
        for check in case.get("alert_rule_test", [])
        if check["alertname"] == name
        for alert in check["exp_alerts"]
    ]


def series_labels(series: str) -> dict[str, str]:
    """The labels of a promtool input series, `__name__` included, unescaped."""
    found = SERIES.fullmatch(series)
    assert found, series
    labels = {label: json.loads(f'"{value}"') for label, value in LABEL.findall(found["labels"])}
    return {"__name__": found["name"], **labels}


def customer_name(case: dict[str, Any], alert_labels: dict[str, str]) -> str | None:
    """The display name that the case's saas_backup_customer_info gives the alert's customer."""
    for series in case["input_series"]:
        labels = series_labels(series["series"])
        if (
            labels["__name__"] == "saas_backup_customer_info"
            and labels["source"] == alert_labels["source"]
            and labels["customer_id"] == str(alert_labels["customer_id"])
        ):
            return labels["customer_name"]
    return None


def inhibitions() -> list[dict[str, Any]]:
    rules_: list[dict[str, Any]] = yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]
    return rules_


def inhibition(source_matcher: str) -> dict[str, Any]:
    (rule,) = [r for r in inhibitions() if r["source_matchers"] == [source_matcher]]
    return rule


def matched(matchers: list[str]) -> set[str]:
    """The alerts whose name and severity the Alertmanager matchers select (regexes anchored,
    as Alertmanager anchors them)."""
    found = set()
    for rule in alerts():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        if all(matches(matcher, labels) for matcher in matchers):
            found.add(rule["alert"])
    return found


def matches(matcher: str, labels: dict[str, str]) -> bool:
    parsed = MATCHER.fullmatch(matcher.strip())
    assert parsed, matcher
    label, operator, value = parsed.groups()
    actual = labels.get(label, "")
    if operator in {"=", "!="}:
        return (actual == value) == (operator == "=")
    return (re.fullmatch(value, actual) is not None) == (operator == "=~")


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_committed_rules_are_what_the_generator_writes() -> None:
    assert RULES.read_text(encoding="utf-8") == generate.render(), (
        "alerts/saas-backup.rules.yml is stale: run `make alerts`"
    )


def test_the_rules_file_reads_back_as_the_rules_built() -> None:
    """The YAML is written by hand, for its comments and blocks: it must parse to the data."""
    assert yaml.safe_load(generate.render()) == {
        "groups": [group.as_prometheus() for group in rules.GROUPS]
    }


def test_generator_writes_where_it_is_told(tmp_path: Path) -> None:
    assert generate.main([str(tmp_path)]) == 0
    assert (tmp_path / RULES.name).read_text(encoding="utf-8") == generate.render()


@pytest.mark.parametrize("command", [["alerts/generate.py"], ["-m", "alerts.generate"]])
def test_generator_runs_as_a_script_and_as_a_module(tmp_path: Path, command: list[str]) -> None:
    result = run(sys.executable, *command, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / RULES.name).read_text(encoding="utf-8") == generate.render()


@pytest.mark.parametrize(
    ("hours", "words"),
    [(1, "an hour"), (6, "6 hours"), (24, "a day"), (36, "36 hours"), (72, "three days")],
)
def test_durations_are_spelled_as_the_descriptions_say_them(hours: int, words: str) -> None:
    assert rules.spelled(hours) == words


def test_promtool_check_rules() -> None:
    result = run(require_tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(yaml.safe_load(RULES.read_text())['groups'][0]['rules'])} rules" in (
        result.stdout
    )


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path) -> None:
    result = promtool_test_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_check_config() -> None:
    result = run(require_tool("amtool"), "check-config", str(ROOT / "deploy" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_is_complete(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"\d+[smhd]", rule.get("for", "")), f"{name}: needs a for:"
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert "{{" not in annotations["summary"], "summary is static"
    assert "{{" in annotations["description"], "description is templated"
    assert annotations["runbook_url"].endswith(f"docs/runbooks.md#{name.lower()}")
    assert f"\n## {name}\n" in RUNBOOKS.read_text(), f"{name}: no section in docs/runbooks.md"


def test_every_test_file_evaluates_every_minute() -> None:
    """The boundary checks below count evaluations as a minute apart."""
    for path in RULE_TESTS:
        assert yaml.safe_load(path.read_text())["evaluation_interval"] == "1m", path.name


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_is_unit_tested_before_and_at_its_boundary(rule: dict[str, Any]) -> None:
    """Within one test case: no alert at one evaluation, the alert (exact labels and
    annotations, which promtool compares) at the next."""
    name, boundaries = rule["alert"], []
    for case_id, case in cases():
        outcomes = {
            seconds(check["eval_time"]): bool(check["exp_alerts"])
            for check in case.get("alert_rule_test", [])
            if check["alertname"] == name
        }
        boundaries += [
            (case_id, at + 60)
            for at, fired in outcomes.items()
            if not fired and outcomes.get(at + 60)
        ]
    assert boundaries, f"{name}: no empty check followed a minute later by the alert"
    # It cannot fire before its `for` has passed; promtool proves the rest.
    assert all(at >= seconds(rule["for"]) for _, at in boundaries), boundaries


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_no_alert_carries_the_customer_name(rule: dict[str, Any]) -> None:
    """A rename must change the text, never the alert's identity: the name is looked up from
    saas_backup_customer_info when the description is expanded."""
    name = rule["alert"]
    assert "customer_name" not in rule["expr"], name
    expected = firing(name)
    assert expected, f"{name}: never expected to fire"
    for _, alert in expected:
        assert "customer_name" not in alert["exp_labels"], name
    about_customers = [(case, a) for case, a in expected if "customer_id" in a["exp_labels"]]
    if not about_customers:
        return
    assert CUSTOMER_LOOKUP in rule["annotations"]["description"], name
    # Proven by promtool: an input names the customer, and the description carries that name.
    named = [
        (customer, alert)
        for case, alert in about_customers
        for customer in [customer_name(case, alert["exp_labels"])]
        if customer
    ]
    assert named, f"{name}: no test case gives its customer a saas_backup_customer_info"
    for customer, alert in named:
        assert customer in alert["exp_annotations"]["description"], (name, customer)


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_keeps_the_labels_inhibitions_compare(rule: dict[str, Any]) -> None:
    """`equal` matches two alerts that both lack a label: an alert without `job` (or a customer
    alert without `source`) would inhibit, or be inhibited by, another exporter's."""
    for _, alert in firing(rule["alert"]):
        labels = alert["exp_labels"]
        assert "job" in labels, rule["alert"]
        assert "instance" not in labels or rule["alert"] == "SaaSBackupExporterDown"
        if "customer_id" in labels:
            assert {"source", "customer_id"} <= labels.keys(), rule["alert"]


def test_a_source_that_is_down_inhibits_every_alert_about_its_data() -> None:
    """Its data is old: only the exporter's and the source's own alerts stay, and the API budget
    and rate-limit alerts, which are often why it is down."""
    rule = inhibition('alertname=~"SaaSBackupSource(Down|Empty)"')
    assert matched(rule["source_matchers"]) == {"SaaSBackupSourceDown", "SaaSBackupSourceEmpty"}
    kept = {
        "SaaSBackupExporterDown",
        "SaaSBackupExporterAbsent",
        "SaaSBackupSourceDown",
        "SaaSBackupSourceEmpty",
        "SaaSBackupSourceAbsent",
        "SaaSBackupAPIBudgetLow",
        "SaaSBackupAPIRateLimited",
    }
    assert kept <= names()
    assert matched(rule["target_matchers"]) == names() - kept
    assert not matched(rule["target_matchers"]) & {
        "SaaSBackupAPIBudgetLow",
        "SaaSBackupAPIRateLimited",
    }
    assert rule["equal"] == ["job", "source"]


def test_an_exporter_that_is_down_inhibits_everything_below_it() -> None:
    rule = inhibition('alertname=~"SaaSBackupExporter(Down|Absent)"')
    exporter = {"SaaSBackupExporterDown", "SaaSBackupExporterAbsent"}
    assert matched(rule["source_matchers"]) == exporter
    assert matched(rule["target_matchers"]) == names() - exporter
    assert rule["equal"] == ["job"]


def test_a_customer_unreadable_or_not_active_holds_back_its_seat_alerts() -> None:
    rule = inhibition('alertname=~"SaaSBackupCustomer(Unreadable|NotActive)"')
    assert matched(rule["source_matchers"]) == {
        "SaaSBackupCustomerUnreadable",
        "SaaSBackupCustomerNotActive",
    }
    seats = {name for name in names() if "Seats" in name}
    assert seats >= {
        "SaaSBackupSeatsNotBackedUp24h",
        "SaaSBackupSeatsNotBackedUp72h",
        "SaaSBackupSeatsNeverBackedUp",
        "SaaSBackupNewUnprotectedSeats",
    }
    assert seats <= matched(rule["target_matchers"])
    assert rule["equal"] == ["job", "source", "customer_id"]


@pytest.mark.parametrize("rule", inhibitions(), ids=lambda r: str(r["source_matchers"]))
def test_every_inhibition_is_scoped_by_labels_both_sides_carry(rule: dict[str, Any]) -> None:
    sources, targets = matched(rule["source_matchers"]), matched(rule["target_matchers"])
    assert sources, "matches no alert"
    assert targets, "matches no alert"
    # Two alerts that match both sides would silence each other.
    assert not sources & targets
    equal = rule.get("equal")
    assert equal, "an inhibition without `equal` silences every exporter's and customer's alerts"
    assert equal[0] == "job"
    for name in sources | targets:
        expected = firing(name)
        assert expected, f"{name}: never expected to fire"
        for _, alert in expected:
            missing = set(equal) - alert["exp_labels"].keys()
            assert not missing, f"{name} fires without {missing}: `equal` cannot tell alerts apart"


def test_alerts_about_the_exporters_data_keep_firing_over_a_gap() -> None:
    """A restart or a few failed scrapes must not resolve them (and page again when the data
    returns). The exceptions describe the scrape itself, the vendor's API, and a restore that
    failed (it resolves by age)."""
    without = {rule["alert"] for rule in alerts() if "keep_firing_for" not in rule}
    assert without == {
        "SaaSBackupExporterDown",
        "SaaSBackupExporterAbsent",
        "SaaSBackupAPIBudgetLow",
        "SaaSBackupAPIRateLimited",
        "SaaSBackupRestoreFailed",
    }
    for rule in alerts():
        if "keep_firing_for" in rule:
            assert rule["keep_firing_for"] == f"{SCRAPE_GAP_MINUTES}m", rule["alert"]


def test_example_prometheus_config() -> None:
    result = run(
        require_tool("promtool"), "check", "config", str(ROOT / "deploy" / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout

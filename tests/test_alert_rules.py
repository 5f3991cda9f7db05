"""The shipped rules and Alertmanager config: generated from alerts/, valid, unit-tested, and
complete."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import generate, rules
from tests.conftest import promtool_test_rules, require_tool

ROOT = Path(__file__).parent.parent
RULES = ROOT / "alerts" / "saas-backup.rules.yml"
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


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


def test_every_alert_is_unit_tested_before_and_at_its_boundary() -> None:
    tested: dict[str, list[bool]] = {}
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                tested.setdefault(check["alertname"], []).append(bool(check["exp_alerts"]))
    for rule in alerts():
        outcomes = tested.get(rule["alert"], [])
        assert False in outcomes, f"{rule['alert']}: not tested before its boundary"
        assert True in outcomes, f"{rule['alert']}: not tested at its boundary"


def test_customer_alerts_name_the_customer() -> None:
    for rule in alerts():
        if "customer_id" in rule["expr"] and "customer_info" not in rule["expr"]:
            assert "saas_backup_customer:info:name" in rule["expr"], rule["alert"]
        if "customer_name" in rule["expr"]:
            assert "$labels.customer_name" in rule["annotations"]["description"], rule["alert"]


def test_a_source_that_is_down_inhibits_every_alert_about_its_data() -> None:
    """Its data is old: only the exporter's and the source's own alerts stay."""
    config = yaml.safe_load((ROOT / "deploy" / "alertmanager.yml").read_text())
    (rule,) = [
        r
        for r in config["inhibit_rules"]
        if r["source_matchers"] == ['alertname="SaaSBackupSourceDown"']
    ]
    (matcher,) = rule["target_matchers"]
    found = re.fullmatch(r'alertname=~"(.+)"', matcher)
    assert found
    kept = {"SaaSBackupExporterDown", "SaaSBackupExporterAbsent", "SaaSBackupSourceDown"}
    for name in {r["alert"] for r in alerts()} - kept:
        assert re.fullmatch(found.group(1), name), f"{name}: not inhibited by SaaSBackupSourceDown"
    assert rule["equal"] == ["source"]


def test_example_prometheus_config() -> None:
    result = run(
        require_tool("promtool"), "check", "config", str(ROOT / "deploy" / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout

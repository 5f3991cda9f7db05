"""The shipped rules and Alertmanager config: valid, unit-tested, and complete."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def test_example_prometheus_config() -> None:
    result = run(
        require_tool("promtool"), "check", "config", str(ROOT / "deploy" / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout

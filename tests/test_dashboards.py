"""The Grafana dashboards: the committed JSON is what dashboards/generate.py writes, and the
conventions hold. The other tests/test_dashboards_*.py files check the PromQL on made-up data,
the provisioning files, and every query against a real Prometheus; they share the helpers here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from alerts import thresholds
from dashboards import generate, problems, widgets
from dashboards.queries import ZERO_SUFFIX
from exporter.health import Level

ROOT = Path(__file__).parent.parent
FOLDER = ROOT / "dashboards"
RULES = ROOT / "alerts" / "saas-backup.rules.yml"
UIDS = {
    "fleet-overview.json": "saas-backup-fleet",
    "customer-detail.json": "saas-backup-customer",
    "exporter-health.json": "saas-backup-exporter",
}


def load(name: str) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((FOLDER / name).read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def target_expr(name: str, title: str, ref: str = "A") -> str:
    panel = next(p for p in panels(load(name)) if p["title"] == title)
    expr: str = next(t["expr"] for t in panel["targets"] if t["refId"] == ref)
    return expr


def bind(expr: str, job: str = ".*", instance: str = ".*", **values: str) -> str:
    """A query with its variables set; made-up series without scrape labels match `.*`."""
    for name, value in {"job": job, "instance": instance, **values}.items():
        expr = expr.replace(f'"${name}"', f'"{value}"')
    assert "$" not in expr.replace('"$1', ""), expr
    return expr


# --- the generator and the committed JSON --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(generate.DASHBOARDS))
def test_committed_json_is_what_the_generator_writes(name: str) -> None:
    committed = (FOLDER / name).read_text(encoding="utf-8")
    assert committed == generate.render(name), f"dashboards/{name} is stale: run `make dashboards`"


def test_every_committed_dashboard_has_a_generator() -> None:
    assert {p.name for p in FOLDER.glob("*.json")} == set(generate.DASHBOARDS)


def test_generator_writes_where_it_is_told(tmp_path: Path) -> None:
    assert generate.main([str(tmp_path)]) == 0
    for name in generate.DASHBOARDS:
        assert (tmp_path / name).read_text(encoding="utf-8") == generate.render(name)


@pytest.mark.parametrize("command", [["dashboards/generate.py"], ["-m", "dashboards.generate"]])
def test_generator_runs_as_a_script_and_as_a_module(tmp_path: Path, command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in tmp_path.iterdir()} == set(generate.DASHBOARDS)


# --- conventions ---------------------------------------------------------------------------------


def datasource_refs(node: object) -> Iterator[object]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


@pytest.mark.parametrize("name", sorted(UIDS))
def test_conventions(name: str) -> None:
    dashboard = load(name)
    assert dashboard["uid"] == UIDS[name]
    assert widgets.TAG in dashboard["tags"]
    # Change the generator, not the dashboard (dashboard-linter's uneditable-dashboard).
    assert dashboard["editable"] is False
    defined = variables(dashboard)
    assert defined["datasource"]["type"] == "datasource"
    assert defined["datasource"]["query"] == "prometheus"
    assert list(defined)[:3] == ["datasource", "job", "instance"]
    # No data source of anyone's: every reference is the variable.
    refs = list(datasource_refs(dashboard["panels"])) + [
        v["datasource"] for v in defined.values() if "datasource" in v
    ]
    assert refs
    assert all(ref == {"type": "prometheus", "uid": "${datasource}"} for ref in refs), refs
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        assert panel.get("description"), f"{panel['title']} has no description"
        refs_ids = [t["refId"] for t in panel["targets"]]
        assert all(refs_ids), panel["title"]
        assert len(refs_ids) == len(set(refs_ids)), panel["title"]


@pytest.mark.parametrize("name", sorted(UIDS))
def test_colours_that_are_set_are_shown(name: str) -> None:
    """Grafana draws a table column's colours only with a colour cell type, and a time
    series' thresholds only with a thresholds style: without them the colours are dead config.
    """
    for panel in panels(load(name)):
        title = panel["title"]
        if panel["type"] == "timeseries" and "thresholds" in panel["fieldConfig"]["defaults"]:
            style = panel["fieldConfig"]["defaults"]["custom"].get("thresholdsStyle", {})
            assert style.get("mode", "off") != "off", f"{title}: thresholds set, never drawn"
        if panel["type"] != "table":
            continue
        for override in panel["fieldConfig"]["overrides"]:
            column = f"{title} / {override['matcher']['options']}"
            found = {p["id"]: p["value"] for p in override["properties"]}
            coloured_mapping = any(
                "color" in result
                for mapping in found.get("mappings", [])
                if mapping["type"] == "value"
                for result in mapping["options"].values()
            )
            if "thresholds" in found or coloured_mapping:
                cell = found.get("custom.cellOptions", {}).get("type", "auto")
                assert cell.startswith("color-"), f"{column}: colours set, never shown"


def test_health_dashboard_job_is_the_one_the_alerts_expect() -> None:
    """Jobs found from Prometheus's own `up`, so that an exporter that is down (its own series
    gone) can still be picked; the one the alerts select chosen when the dashboard opens."""
    job = variables(load("exporter-health.json"))["job"]
    assert job["type"] == "query"
    assert job["query"] == "label_values(up, job)"
    assert f'up{{job="{thresholds.JOB}"}}' in RULES.read_text()
    assert job["current"]["value"] == [thresholds.JOB]
    instance = variables(load("exporter-health.json"))["instance"]
    assert instance["query"] == 'label_values(up{job=~"$job"}, instance)'
    # The others find the exporter's jobs by its own series, every one chosen.
    for name in ("fleet-overview.json", "customer-detail.json"):
        job = variables(load(name))["job"]
        assert job["query"] == "label_values(saas_backup_up, job)"
        assert job["current"]["value"] == ["$__all"]


def steps_of(name: str, title: str, column: str | None = None) -> list[float | None]:
    """The threshold values of a panel, or of one of its table columns."""
    panel = next(p for p in panels(load(name)) if p["title"] == title)
    if column is None:
        found = panel["fieldConfig"]["defaults"]["thresholds"]
    else:
        (found,) = [
            prop["value"]
            for override in panel["fieldConfig"]["overrides"]
            if override["matcher"]["options"] == column
            for prop in override["properties"]
            if prop["id"] == "thresholds"
        ]
    return [step["value"] for step in found["steps"]]


def test_colours_are_the_alert_thresholds() -> None:
    """The dashboards read alerts/thresholds.py, as the rules do (tests/test_alert_rules.py
    holds the rules to it)."""
    hour = 3600
    stale, critical = thresholds.SEAT_STALE_HOURS, thresholds.SEAT_CRITICAL_HOURS
    ages = [None, stale * hour, critical * hour]
    assert steps_of("fleet-overview.json", "Customers, worst first", "Worst backup age") == ages
    assert steps_of("customer-detail.json", "Seats, worst first", "Last backup age") == ages
    too_long = thresholds.BACKUP_TOO_LONG_HOURS
    assert steps_of("customer-detail.json", "Running backups", "Running for") == [
        None,
        too_long * hour,
    ]
    budget = thresholds.API_BUDGET_LOW
    assert steps_of("exporter-health.json", "Vendor API budget remaining") == [None, budget]
    unprotected = thresholds.NOT_FULLY_PROTECTED_HOURS
    assert steps_of("customer-detail.json", "Application protection", "Since fully protected") == [
        None,
        stale * hour,
        unprotected * hour,
    ]
    ratios = [None, thresholds.BACKUP_RATIO_POOR, thresholds.BACKUP_RATIO_GOOD]
    assert steps_of("fleet-overview.json", f"Backed up in {stale} h") == ratios
    assert steps_of("customer-detail.json", "Backup ratio") == ratios


@pytest.mark.parametrize("name", sorted(UIDS))
def test_units_and_thresholds(name: str) -> None:
    for panel in panels(load(name)):
        defaults = panel["fieldConfig"]["defaults"]
        overrides = panel["fieldConfig"]["overrides"]
        override_ids = {p["id"] for o in overrides for p in o["properties"]}
        if panel["type"] in {"stat", "timeseries"}:
            assert defaults.get("unit"), f"{panel['title']} has no unit"
        if panel["type"] == "stat":
            assert defaults["thresholds"]["steps"], f"{panel['title']} has no threshold colours"
        if panel["type"] == "table" and panel["title"] != "Exporter instances":
            assert "unit" in override_ids, f"{panel['title']} has no unit on any column"


def test_ages_are_seconds_timestamps_from_now_and_ratios_percent() -> None:
    units: dict[str, set[str]] = {}
    for name in UIDS:
        for panel in panels(load(name)):
            found = {panel["fieldConfig"]["defaults"].get("unit", "")}
            for override in panel["fieldConfig"]["overrides"]:
                found |= {p["value"] for p in override["properties"] if p["id"] == "unit"}
            units[panel["title"]] = found
    assert "s" in units["Customers, worst first"]
    assert "s" in units["Seats, worst first"]
    assert "dateTimeFromNow" in units["Applications"]
    assert "dateTimeFromNow" in units["Recent restore jobs"]
    assert "percentunit" in units["Backed up in 24 h"]
    assert "percentunit" in units["Backup ratio"]
    assert {"dateTimeFromNow", "s", "bytes"} <= units["Application protection"]
    assert "bytes" in units["Used storage"]
    assert "bytes" in units["Used storage by application"]


def test_fleet_table_links_each_customer_to_its_detail() -> None:
    fleet = load("fleet-overview.json")
    table = next(p for p in panels(fleet) if p["title"] == "Customers, worst first")
    links = [
        link
        for override in table["fieldConfig"]["overrides"]
        if override["matcher"]["options"] == "Customer"
        for prop in override["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert len(links) == 1
    url = links[0]["url"]
    assert url.startswith(f"/d/{UIDS['customer-detail.json']}/")
    assert "var-source=${__data.fields.source}" in url
    assert "var-customer=${__data.fields.customer_id}" in url
    # The customer opens from the same Prometheus, job and exporter replicas.
    assert "${datasource:queryparam}&${job:queryparam}&${instance:queryparam}" in url
    customer = variables(load("customer-detail.json"))
    assert {"source", "customer"} <= set(customer)
    # The fields the link reads are hidden or shown, never removed by the organize step.
    organize = next(t for t in table["transformations"] if t["id"] == "organize")
    assert not {"source", "customer_id"} & set(organize["options"]["excludeByName"])
    assert table["options"]["sortBy"] == [{"desc": True, "displayName": "State"}]


@pytest.mark.parametrize("name", sorted(UIDS))
def test_json_round_trips_through_the_sdk_schema(name: str) -> None:
    """The SDK's models follow Grafana's dashboard schema: nothing is lost or unknown."""
    data = load(name)
    plugins.register_default_plugins()
    back = json.loads(JSONEncoder().encode(dm.Dashboard.from_json(data)))
    assert back == data


# --- the fleet's top row, and its states ---------------------------------------------------------

TOP_ROW = [
    "Sources",
    "Data age",
    "Unreadable customers",
    "Customers needing attention",
    "Failed backups",
    f"Failed restores, {thresholds.RESTORE_FAILED_WITHIN_HOURS} h",
]


def test_fleet_top_row_answers_are_we_ok() -> None:
    fleet = panels(load("fleet-overview.json"))
    top = [p for p in fleet if p["gridPos"]["y"] == 0]
    assert [p["title"] for p in sorted(top, key=lambda p: p["gridPos"]["x"])] == TOP_ROW
    assert sum(p["gridPos"]["w"] for p in top) == 24
    for panel in top:
        defaults = panel["fieldConfig"]["defaults"]
        (target,) = panel["targets"]
        assert target["instant"], panel["title"]
        # Missing data says so; never a fallback 0 from nothing.
        assert defaults["noValue"] in {"unknown", "no data"}, panel["title"]
        if panel["title"] not in {"Sources", "Data age"}:
            assert ZERO_SUFFIX in target["expr"], panel["title"]


@pytest.mark.parametrize("name", sorted(UIDS))
def test_no_fake_zero(name: str) -> None:
    """No query makes a 0 out of nothing: `vector(0)` is a green 0 during an outage."""
    for panel in panels(load(name)):
        for target in panel["targets"]:
            assert "vector(" not in target["expr"], panel["title"]


def test_levels_are_the_status_pages() -> None:
    assert {level.value: level.word for level in Level} == problems.LEVELS
    assert Level(problems.ATTENTION) == Level.STALE
    kinds = {p.kind for p in problems.PROBLEMS}
    assert kinds == {"customer", "seat", "application", "backup", "restore"}
    table = next(
        p for p in panels(load("fleet-overview.json")) if p["title"] == "Customers, worst first"
    )
    (override,) = [
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "State"
    ]
    mappings = next(p["value"] for p in override["properties"] if p["id"] == "mappings")
    # Each level and anything up to half above it (the sort key's age) has its level's word.
    assert [
        (m["options"]["from"], m["options"]["to"], m["options"]["result"]["text"]) for m in mappings
    ] == [(level.value, level.value + 0.5, level.word) for level in Level]

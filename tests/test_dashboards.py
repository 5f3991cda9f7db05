"""The Grafana dashboards: the committed JSON is what dashboards/generate.py writes, the
conventions hold, the provisioning files load, and every PromQL expression in every panel and
template variable runs through a real Prometheus that scrapes the demo fleet.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from pydantic import BaseModel, ConfigDict

from dashboards import generate
from exporter.app import build_app
from exporter.cli import demo_config
from exporter.model import BACKUP_STATUSES, CUSTOMER_STATUSES
from exporter.simulator import Simulator
from tests.conftest import Prometheus, ServerThread, promtool_test_rules, samples

ROOT = Path(__file__).parent.parent
FOLDER = ROOT / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
UIDS = {
    "fleet-overview.json": "saas-backup-fleet",
    "customer-detail.json": "saas-backup-customer",
    "exporter-health.json": "saas-backup-exporter",
}

# Panels that must show data for the demo fleet, which has a bit of everything.
CORE = {
    "saas-backup-fleet": {
        "Customers",
        "Licensed seats",
        "Backed up in 24 h",
        "Stale seats",
        "Never backed up",
        "Running backups",
        "Failed restores, 24 h",
        "Customers by worst backup age",
        "Seats by license state",
        "Stale licensed seats",
    },
    "saas-backup-customer": {
        "Seats, worst first",
        "Applications",
        "Running backups",
        "Recent restore jobs",
    },
    "saas-backup-exporter": {
        "Source up",
        "Refresh duration",
        "Cache age",
        "API requests by status code",
        "Vendor API budget remaining",
        "Parse errors",
    },
}

# Grafana's own variables, as a dashboard over the last 5 minutes would fill them in.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
# generate.or_zero's fallbacks: 0 always, or 0 where the vendor reports the thing at all.
FALLBACK = re.compile(r"(?: or vector\(0\)|\nor on \(\) count\([^\n]+\) \* 0)$")


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
    assert generate.TAG in dashboard["tags"]
    defined = variables(dashboard)
    assert defined["datasource"]["type"] == "datasource"
    assert defined["datasource"]["query"] == "prometheus"
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
    """A typed job, so an exporter that is down (no series to look its job up by) still shows."""
    job = variables(load("exporter-health.json"))["job"]
    assert job["type"] == "textbox"
    rules = (ROOT / "alerts" / "saas-backup.rules.yml").read_text()
    assert f'up{{job="{job["query"]}"}}' in rules
    assert job["current"]["value"] == job["query"]
    for panel in panels(load("exporter-health.json")):
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: ignores the job"


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
    assert "s" in units["Customers by worst backup age"]
    assert "s" in units["Seats, worst first"]
    assert "dateTimeFromNow" in units["Applications"]
    assert "dateTimeFromNow" in units["Recent restore jobs"]
    assert "percentunit" in units["Backed up in 24 h"]
    assert "percentunit" in units["Backup ratio"]


def test_fleet_table_links_each_customer_to_its_detail() -> None:
    fleet = load("fleet-overview.json")
    table = next(p for p in panels(fleet) if p["title"] == "Customers by worst backup age")
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
    customer = variables(load("customer-detail.json"))
    assert {"source", "customer"} <= set(customer)
    # The fields the link reads are hidden or shown, never removed by the organize step.
    organize = next(t for t in table["transformations"] if t["id"] == "organize")
    assert not {"source", "customer_id"} & set(organize["options"]["excludeByName"])
    assert table["options"]["sortBy"] == [{"desc": True, "displayName": "Worst backup age"}]


# --- the fleet arithmetic, on a made-up fleet, by promtool ----------------------------------------


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
        return expr.replace("$source", source)

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
    expr = target_expr("customer-detail.json", "Applications").replace("$source", ".*")
    expr = expr.replace("$customer", ".*")
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


# --- provisioning --------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Datasource(Strict):
    """Grafana's datasource provisioning fields (pkg/services/provisioning/datasources)."""

    name: str
    type: str
    uid: str | None = None
    access: Literal["proxy", "direct"]
    orgId: int = 1
    url: str
    isDefault: bool = False
    editable: bool = False
    basicAuth: bool = False
    jsonData: dict[str, Any] = {}
    secureJsonData: dict[str, str] = {}
    version: int | None = None


class Datasources(Strict):
    apiVersion: Literal[1]
    datasources: list[Datasource]


class ProviderOptions(Strict):
    path: str
    foldersFromFilesStructure: bool = False


class Provider(Strict):
    """Grafana's dashboard provider fields (pkg/services/provisioning/dashboards)."""

    name: str
    orgId: int = 1
    folder: str = ""
    folderUid: str = ""
    type: Literal["file"]
    disableDeletion: bool = False
    allowUiUpdates: bool = False
    updateIntervalSeconds: int = 10
    options: ProviderOptions


class Providers(Strict):
    apiVersion: Literal[1]
    providers: list[Provider]


def test_provisioning_loads_and_matches_the_dashboards() -> None:
    datasource_files = sorted((PROVISIONING / "datasources").glob("*.yml"))
    provider_files = sorted((PROVISIONING / "dashboards").glob("*.yml"))
    assert datasource_files
    assert provider_files
    datasources = [
        d
        for f in datasource_files
        for d in Datasources(**yaml.safe_load(f.read_text())).datasources
    ]
    providers = [
        p for f in provider_files for p in Providers(**yaml.safe_load(f.read_text())).providers
    ]
    assert [d.type for d in datasources] == ["prometheus"]
    assert datasources[0].isDefault
    (provider,) = providers
    # The README's `docker run` mounts dashboards/ at the provider's path.
    readme = (ROOT / "README.md").read_text()
    assert f"dashboards:{provider.options.path}:ro" in readme
    assert "deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in readme


def test_provisioning_rejects_a_misspelled_field() -> None:
    """The models above are strict, so the test above would catch a typo in the files."""
    with pytest.raises(ValueError, match="updateIntervalSecond"):
        Provider(name="x", type="file", options={"path": "/x"}, updateIntervalSecond=5)  # type: ignore[call-arg]


# --- every query against a real Prometheus -------------------------------------------------------


@dataclass
class Live:
    prometheus: Prometheus
    exporter: ServerThread


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    sim = Simulator(customers=12, seats_per_customer=25, seed=1)  # `make demo`'s fleet
    servers = [ServerThread(sim.app()).start()]
    try:
        exporter = ServerThread(build_app(demo_config(servers[0].url, sim))).start()
        servers.append(exporter)
        prometheus = Prometheus(
            tmp_path_factory.mktemp("prometheus"),
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "saas-backup",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                    }
                ],
            },
        ).start()
        try:
            prometheus.wait_for(
                "count(saas_backup_up == 1)", lambda r: r and r[0]["value"][1] == "3"
            )
            # rate() over [1m] needs two samples; take a few more.
            prometheus.wait_for(
                "min(count_over_time(saas_backup_up[1m]))",
                lambda r: r and float(r[0]["value"][1]) >= 4,
            )
            yield Live(prometheus, exporter)
        finally:
            prometheus.stop()
    finally:
        for server in reversed(servers):
            server.stop()


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name.isdigit():  # label_replace's "$1", not a variable
            return match.group(0)
        if name in values:
            return values[name]
        raise AssertionError(f"{expr!r} uses ${name}, which the dashboard does not define")

    return VARIABLE.sub(replace, expr)


def grafana_query_result_text(series: dict[str, Any]) -> str:
    """How Grafana's Prometheus data source renders a query_result() series for its regex."""
    labels = dict(series["metric"])
    name = labels.pop("__name__", "")
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    value, at = series["value"][1], series["value"][0]
    return f"{name}{{{body}}} {value} {int(at * 1000)}"


def resolve_variable(
    prometheus: Prometheus, variable: dict[str, Any], values: dict[str, str]
) -> list[str]:
    """Run a query variable as Grafana would, with the values of the variables before it."""
    query = substitute(variable["query"], values)
    if found := re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query, re.DOTALL):
        selector, label = found.groups()
        reply = prometheus.api(f"/api/v1/label/{label}/values", **{"match[]": selector})
        assert reply["status"] == "success", (query, reply)
        texts: list[str] = reply["data"]
    elif found := re.fullmatch(r"query_result\((.+)\)", query, re.DOTALL):
        reply = prometheus.api("/api/v1/query", query=found.group(1))
        assert reply["status"] == "success", (query, reply)
        texts = [grafana_query_result_text(s) for s in reply["data"]["result"]]
    else:
        raise AssertionError(f"variable {variable['name']}: query {query!r} is of no known kind")
    regex = variable.get("regex")
    if not regex:
        return texts
    # Grafana's /regex/ with JavaScript's named groups; Python spells them (?P<name>...).
    pattern = re.compile(regex.strip("/").replace("(?<", "(?P<"))
    picked = []
    for text in texts:
        if matched := pattern.search(text):
            groups = matched.groupdict()
            picked.append(groups.get("value") or matched.group(1))
    return picked


@dataclass
class Outcome:
    panel: str
    ref: str
    expr: str
    result: list[dict[str, Any]]
    error: str | None


def run_target(
    prometheus: Prometheus, panel: str, target: dict[str, Any], values: dict[str, str]
) -> Outcome:
    expr = substitute(target["expr"], values)
    if target.get("instant"):
        reply = prometheus.api("/api/v1/query", query=expr)
    else:
        end = time.time()
        reply = prometheus.api("/api/v1/query_range", query=expr, start=end - 300, end=end, step=15)
    error = None
    if reply["status"] != "success":
        error = f"{reply.get('errorType')}: {reply.get('error')}"
    elif reply.get("warnings"):
        error = f"warnings: {reply['warnings']}"
    result = reply.get("data", {}).get("result", []) if error is None else []
    return Outcome(panel, target["refId"], expr, result, error)


def run_dashboard(live: Live, dashboard: dict[str, Any], values: dict[str, str]) -> list[Outcome]:
    return [
        run_target(live.prometheus, panel["title"], target, values)
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def match_all_values(live: Live, dashboard: dict[str, Any]) -> dict[str, str]:
    """Every variable at its match-all value, after proving its own query finds values."""
    values = dict(BUILTINS)
    for name, variable in variables(dashboard).items():
        if variable["type"] == "query":
            found = resolve_variable(live.prometheus, variable, values)
            assert found, f"variable {name} finds no values for the demo fleet"
        # A text box holds what was typed: its default, as a dashboard opens.
        values[name] = variable["query"] if variable["type"] == "textbox" else ".*"
    return values


@pytest.mark.tools
@pytest.mark.parametrize("name", sorted(UIDS))
def test_every_query_runs_and_core_panels_have_data(live: Live, name: str) -> None:
    dashboard = load(name)
    outcomes = run_dashboard(live, dashboard, match_all_values(live, dashboard))
    errors = [f"{o.panel} [{o.ref}]: {o.error}\n{o.expr}" for o in outcomes if o.error]
    assert not errors, "\n\n".join(errors)
    core = CORE[dashboard["uid"]]
    titles = {p["title"] for p in panels(dashboard)}
    assert core <= titles, f"core panels missing: {core - titles}"
    empty = []
    for outcome in outcomes:
        if outcome.panel not in core:
            continue
        if not outcome.result:
            empty.append(f"{outcome.panel} [{outcome.ref}]")
        elif fallback := FALLBACK.search(outcome.expr):
            # A fallback 0 must not hide a query that finds nothing.
            bare = outcome.expr[: fallback.start()]
            if not live.prometheus.query(bare):
                empty.append(f"{outcome.panel} [{outcome.ref}] without its fallback")
    assert not empty, f"core panels with no data: {empty}"


def instant(outcomes: list[Outcome], panel: str, ref: str = "A") -> list[dict[str, Any]]:
    return next(o.result for o in outcomes if o.panel == panel and o.ref == ref)


def backed_up_share(exposed: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    """The fleet's backed-up share, computed here from the exposition, as the panel describes it.

    (The tolerance the caller allows is one seat in the demo's ~300, for a seat that turns 24 h
    old between the scrape and this computation.)
    """
    now = time.time()
    licensed: dict[tuple[str, str], float] = {}
    stale: dict[tuple[str, str], float] = {}
    never: dict[tuple[str, str], float] = {}
    services: dict[tuple[str, str, str], float] = {}
    for (metric, label_set), v in exposed.items():
        labels = dict(label_set)
        key = (labels.get("source", ""), labels.get("customer_id", ""))
        is_licensed = labels.get("license_state") == "licensed"
        if metric == "saas_backup_seats" and is_licensed:
            licensed[key] = licensed.get(key, 0) + v
        elif metric == "saas_backup_seat_last_backup_timestamp_seconds" and is_licensed:
            stale[key] = stale.get(key, 0) + (now - v > 86400)
        elif metric == "saas_backup_seats_never_backed_up" and is_licensed:
            never[key] = never.get(key, 0) + v
        elif metric == "saas_backup_customer_services":
            services[(*key, labels["state"])] = v
    ok = total = 0.0
    customers_with_services = {(s, c) for (s, c, _) in services}
    for key in set(licensed) | customers_with_services:
        if key in stale or key in never:
            ok += licensed[key] - stale[key] - never.get(key, 0)
            total += licensed[key]
        elif key in customers_with_services:
            ok += services[(*key, "backed_up_recently")]
            total += services[(*key, "active")]
    assert stale, "the demo fleet has customers with per-seat times"
    assert set(licensed) - set(stale), "and customers without (the live Datto shape)"
    return ok / total


@pytest.mark.tools
def test_fleet_numbers_agree_with_the_exporter(live: Live) -> None:
    dashboard = load("fleet-overview.json")
    outcomes = run_dashboard(live, dashboard, match_all_values(live, dashboard))
    body = httpx.get(live.exporter.url + "/metrics", timeout=30).text
    exposed = samples(body)
    customers = {
        (dict(labels)["source"], dict(labels)["customer_id"])
        for (metric, labels) in exposed
        if metric == "saas_backup_customer_info"
    }
    licensed = sum(
        v
        for (metric, labels), v in exposed.items()
        if metric == "saas_backup_seats" and ("license_state", "licensed") in labels
    )

    def single(panel: str) -> float:
        (series,) = instant(outcomes, panel)
        return float(series["value"][1])

    assert single("Customers") == len(customers) == 24
    assert single("Licensed seats") == licensed > 0
    assert single("Backed up in 24 h") == pytest.approx(backed_up_share(exposed), abs=0.004)
    assert single("Stale seats") > 0
    assert single("Never backed up") > 0
    assert single("Running backups") >= 1
    assert single("Failed restores, 24 h") >= 1
    # The customer table names every row from saas_backup_customer_info, for the data link too.
    rows = instant(outcomes, "Customers by worst backup age")
    assert rows
    for row in rows:
        assert {"customer_name", "source", "customer_id"} <= set(row["metric"]), row
        assert (row["metric"]["source"], row["metric"]["customer_id"]) in customers
    # Failed backups: newest runs (applications, backup instances) that failed, per customer;
    # 0 where runs are reported and none failed, nothing where no run status is reported.
    failed: dict[tuple[str, str], int] = {}
    for (metric, label_set), _ in exposed.items():
        if metric in {
            "saas_backup_last_backup_end_timestamp_seconds",
            "saas_backup_application_last_backup_status",
        }:
            labels = dict(label_set)
            key = (labels["source"], labels["customer_id"])
            failed[key] = failed.get(key, 0) + (labels["status"] == "failed")
    column = {
        (row["metric"]["source"], row["metric"]["customer_id"]): float(row["value"][1])
        for row in instant(outcomes, "Customers by worst backup age", "F")
    }
    assert column == {key: n for key, n in failed.items() if key in customers}
    assert any(column.values()), "the demo fleet has a failed backup"
    assert 0 in column.values(), "and customers whose newest backups did not fail"


@pytest.mark.tools
def test_customer_detail_for_each_real_customer(live: Live) -> None:
    """As a user picks them: each source, then each of its customers from the picker."""
    dashboard = load("customer-detail.json")
    defined = variables(dashboard)
    seen: dict[str, int] = {}
    errors: list[str] = []
    sources = resolve_variable(live.prometheus, defined["source"], dict(BUILTINS))
    assert sorted(sources) == ["backupify", "cloudally", "datto"]
    for source in sources:
        values = {**BUILTINS, "source": source}
        customers = resolve_variable(live.prometheus, defined["customer"], values)
        assert customers, f"no customers in the picker for {source}"
        for customer in customers:
            chosen = {**values, "customer": customer}
            states = resolve_variable(live.prometheus, defined["license_state"], chosen)
            # Grafana keeps the saved choice when it is offered, else falls back to All.
            (default,) = defined["license_state"]["current"]["value"]
            chosen["license_state"] = default if default in states else ".*"
            outcomes = run_dashboard(live, dashboard, chosen)
            errors += [f"{source}/{customer} {o.panel}: {o.error}" for o in outcomes if o.error]
            for outcome in outcomes:
                seen[outcome.panel] = seen.get(outcome.panel, 0) + bool(outcome.result)
            (name,) = instant(outcomes, "Customer")
            assert name["metric"]["customer_id"] == customer
            assert name["metric"]["customer_name"]
    assert not errors, errors
    assert all(seen[panel] for panel in CORE["saas-backup-customer"]), seen


def test_customer_picker_shows_names_and_keeps_ids() -> None:
    variable = variables(load("customer-detail.json"))["customer"]
    fake = {
        "metric": {"customer_id": "1001", "customer_label": "Adatum Accounting · 1001"},
        "value": [1700000000.5, "1"],
    }
    text = grafana_query_result_text(fake)
    assert text == '{customer_id="1001",customer_label="Adatum Accounting · 1001"} 1 1700000000500'
    pattern = re.compile(variable["regex"].strip("/").replace("(?<", "(?P<"))
    matched = pattern.search(text)
    assert matched
    assert matched.group("value") == "1001"
    assert matched.group("text") == "Adatum Accounting · 1001"


def test_every_status_the_exporter_emits_has_a_colour() -> None:
    assert set(generate.STATUS_COLOURS) == set(BACKUP_STATUSES)
    assert set(generate.CUSTOMER_STATUS_COLOURS) == set(CUSTOMER_STATUSES)


@pytest.mark.parametrize("name", sorted(UIDS))
def test_json_round_trips_through_the_sdk_schema(name: str) -> None:
    """The SDK's models follow Grafana's dashboard schema: nothing is lost or unknown."""
    data = load(name)
    plugins.register_default_plugins()
    back = json.loads(JSONEncoder().encode(dm.Dashboard.from_json(data)))
    assert back == data

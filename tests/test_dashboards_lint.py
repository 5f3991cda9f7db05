"""grafana/dashboard-linter's rules, applied here: the linter itself is a Go program that the
registries we reach do not carry. Each rule below is the linter's (lint/rule_*.go), with its
name; warnings count as failures, and where the Go rule has a blind spot (a `_total` selector
with matchers, an empty mappings list that exempts a panel from units) the rule here is stricter.
PromQL is parsed by promql-parser (Prometheus's grammar, from PyPI), as the linter parses it with
Prometheus's own parser.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

import promql_parser as promql
import pytest

from tests.test_dashboards import UIDS, load, panels

Dashboard = dict[str, Any]
Rule = Callable[[Dashboard], Iterator[str]]

# The linter's stand-ins for Grafana's global variables, where a query needs a value to parse;
# its own durations are in milliseconds, which promql-parser cannot take past 2^32.
GLOBALS: Final = {
    "__rate_interval": "8869990s",
    "__interval": "4867856s",
    "__range": "6069770s",
    "__interval_ms": "7781188786",
    "__range_ms": "6737667980",
    "__range_s": "9397795485",
}
RATE_INTERVAL: Final = datetime.timedelta(seconds=8869990)
VARIABLE: Final = re.compile(r"\$(\w+)|\$\{([^}]+)\}|\[\[([^\[\]]+)\]\]")
PANELS_WITH_QUERIES: Final = {
    "singlestat",
    "gauge",
    "table",
    "stat",
    "state-timeline",
    "timeseries",
}
PANELS_CHECKED: Final = {"stat", "singlestat", "graph", "table", "timeseries", "gauge"}
# panel-units-rule's list (grafana-data's valueFormats/categories.ts).
UNITS: Final = """
    none string short percent percentunit humidity dB hex0x hex sci locale pixel accMS2 accFS2
    accG degree radian grad arcmin arcsec areaM2 areaF2 areaMI2 flops mflops gflops tflops
    pflops eflops zflops yflops ppm conppb conngm3 conngNm3 conμgm3 conμgNm3 conmgm3 conmgNm3
    congm3 congNm3 conmgdL conmmolL bytes decbytes bits decbits kbytes deckbytes mbytes
    decmbytes gbytes decgbytes tbytes dectbytes pbytes decpbytes pps binBps Bps binbps bps KiBs
    Kibits KBs Kbits MiBs Mibits MBs Mbits GiBs Gibits GBs Gbits TiBs Tibits TBs Tbits PiBs
    Pibits PBs Pbits dateTimeAsIso dateTimeAsIsoNoDateIfToday dateTimeAsUS
    dateTimeAsUSNoDateIfToday dateTimeAsLocal dateTimeAsLocalNoDateIfToday dateTimeAsSystem
    dateTimeFromNow hertz ns µs ms s m h d dtdurationms dtdurations dthms dtdhms timeticks
    clockms clocks cps ops reqps rps wps iops cpm opm rpm wpm mps mpm bool bool_yes_no
    bool_on_off
"""
VALID_UNITS: Final = frozenset(UNITS.split())


def expand(expr: str) -> str:
    """Variables outside double-quoted strings replaced as the linter's expandVariables does: a
    global by its stand-in, any other by its own name."""
    parts = expr.split('"')
    for i in range(0, len(parts), 2):

        def sample(match: re.Match[str]) -> str:
            name = next(g for g in match.groups() if g is not None).split(":")[0]
            return GLOBALS.get(name, name)

        parts[i] = VARIABLE.sub(sample, parts[i])
    return '"'.join(parts)


def parse(expr: str) -> promql.Expr:
    return promql.parse(expand(expr))


def children(node: promql.Expr) -> list[promql.Expr]:
    if isinstance(node, promql.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, promql.Call):
        return list(node.args)
    if isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        return [node.expr]
    if isinstance(node, promql.MatrixSelector):
        return [node.vector_selector]
    return []


def walk(
    node: promql.Expr, parents: tuple[promql.Expr, ...] = ()
) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    yield node, parents
    for child in children(node):
        yield from walk(child, (*parents, node))


def targets(dashboard: Dashboard) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            yield panel, target


def variables_of(dashboard: Dashboard, kind: str) -> list[dict[str, Any]]:
    return [v for v in dashboard["templating"]["list"] if v["type"] == kind]


# --- dashboard rules -----------------------------------------------------------------------------


def template_datasource_rule(d: Dashboard) -> Iterator[str]:
    found = variables_of(d, "datasource")
    if not found:
        yield "does not have a templated data source"
    for variable in found:
        query = variable["query"]
        names = {f"{query.lower()}_datasource"} | ({"datasource"} if len(found) == 1 else set())
        labels = {f"{query.title()} data source"} | ({"Data source"} if len(found) == 1 else set())
        if variable["name"] not in names:
            yield f"templated data source variable named {variable['name']!r}"
        if variable.get("label") not in labels:
            yield f"templated data source variable labeled {variable.get('label')!r}"


def template_rule(name: str) -> Rule:
    def rule(d: Dashboard) -> Iterator[str]:
        found = [v for v in d["templating"]["list"] if v["name"] == name]
        if not found:
            yield f"is missing the {name} template"
            return
        (variable,) = found
        if variable.get("datasource", {}).get("uid") not in {"$datasource", "${datasource}"}:
            yield f"{name} template should use datasource '$datasource'"
        if variable["type"] != "query":
            yield f"{name} template should be a Prometheus query, is {variable['type']!r}"
        if variable.get("label") != name.title():
            yield f"{name} template should be labeled {name.title()!r}"
        if not variable.get("multi"):
            yield f"{name} template should be a multi select"
        if variable.get("allValue") != ".+":
            yield f"{name} template allValue should be '.+', is {variable.get('allValue')!r}"

    return rule


def template_label_promql_rule(d: Dashboard) -> Iterator[str]:
    for variable in variables_of(d, "query"):
        query = variable["query"]
        found = re.fullmatch(r"([a-z_]+)\((.+)\)", query, re.DOTALL)
        if found is None:
            yield f"template {variable['name']!r}: invalid query {query!r}"
            continue
        function, argument = found.groups()
        if function not in {"label_names", "label_values", "metrics", "query_result"}:
            yield f"template {variable['name']!r}: invalid function {function!r}"
            continue
        if function == "label_values":
            argument = re.sub(r",\s*\w+\s*$", "", argument)
        try:
            parse(argument)
        except ValueError as error:
            yield f"template {variable['name']!r}: {query!r}: {error}"


def template_on_time_change_reload_rule(d: Dashboard) -> Iterator[str]:
    for variable in variables_of(d, "query"):
        if variable.get("refresh") != 2:
            yield f"variable {variable['name']!r} does not refresh on time range change"


def uneditable_dashboard(d: Dashboard) -> Iterator[str]:
    if d.get("editable", True):
        yield "is editable, it should be set to 'editable: false'"


# --- panel rules ---------------------------------------------------------------------------------


def panel_datasource_rule(d: Dashboard) -> Iterator[str]:
    allowed = {f"${v['name']}" for v in variables_of(d, "datasource")}
    allowed |= {f"${{{v['name']}}}" for v in variables_of(d, "datasource")}
    for panel in panels(d):
        if (panel.get("datasource") or {}).get("uid") not in allowed:
            yield f"panel {panel['title']!r} does not use a templated datasource"


def panel_title_description_rule(d: Dashboard) -> Iterator[str]:
    for panel in panels(d):
        if panel["type"] in PANELS_CHECKED and not (
            panel.get("title") and panel.get("description")
        ):
            yield f"panel {panel.get('title')!r} has no title or description"


def panel_units_rule(d: Dashboard) -> Iterator[str]:
    for panel in panels(d):
        if panel["type"] not in PANELS_CHECKED:
            continue
        if panel["type"] == "stat" and panel["options"].get("reduceOptions", {}).get("fields"):
            continue
        config = panel["fieldConfig"]
        properties = [p for o in config["overrides"] for p in o["properties"]]
        if config["defaults"].get("mappings") or any(
            p["id"] == "mappings" and p["value"] for p in properties
        ):
            continue
        units = [p["value"] for p in properties if p["id"] == "unit"]
        unit = units[-1] if units else config["defaults"].get("unit", "")
        if unit not in VALID_UNITS:
            yield f"panel {panel['title']!r} has no or invalid units: {unit!r}"


def panel_no_targets_rule(d: Dashboard) -> Iterator[str]:
    for panel in panels(d):
        if panel["type"] in PANELS_CHECKED and not panel.get("targets"):
            yield f"panel {panel['title']!r} has no targets"


# --- target rules --------------------------------------------------------------------------------


def target_promql_rule(d: Dashboard) -> Iterator[str]:
    for panel, target in targets(d):
        if panel["type"] not in PANELS_WITH_QUERIES:
            continue
        try:
            parse(target["expr"])
        except ValueError as error:
            yield f"{panel['title']} [{target['refId']}]: invalid PromQL: {error}"


def parsed(d: Dashboard) -> Iterator[tuple[str, promql.Expr]]:
    """Each target's parsed query; those that do not parse are target_promql_rule's."""
    for panel, target in targets(d):
        try:
            yield f"{panel['title']} [{target['refId']}]", parse(target["expr"])
        except ValueError:
            continue


def target_rate_interval_rule(d: Dashboard) -> Iterator[str]:
    for where, expr in parsed(d):
        for node, parents in walk(expr):
            if not isinstance(node, promql.MatrixSelector) or node.range == RATE_INTERVAL:
                continue
            if not parents:
                continue
            parent = parents[-1]
            if not isinstance(parent, promql.Call):
                yield f"{where}: a range outside a function call"
            elif parent.func.name in {"rate", "irate"}:
                yield f"{where}: should use $__rate_interval"


def target_matcher_rule(label: str) -> Rule:
    def rule(d: Dashboard) -> Iterator[str]:
        for where, expr in parsed(d):
            for node, _ in walk(expr):
                if not isinstance(node, promql.VectorSelector):
                    continue
                matchers = [m for m in node.matchers.matchers if m.name == label]
                ok = [m for m in matchers if m.op == promql.MatchOp.Re and m.value == f"${label}"]
                if not ok:
                    yield f'{where}: {node} has no {label}=~"${label}"'

    return rule


def target_counter_agg_rule(d: Dashboard) -> Iterator[str]:
    for where, expr in parsed(d):
        for node, parents in walk(expr):
            if not isinstance(node, promql.VectorSelector) or not (node.name or "").endswith(
                "_total"
            ):
                continue
            ranged = len(parents) >= 2 and isinstance(parents[-1], promql.MatrixSelector)
            call = parents[-2] if ranged else None
            if not (
                isinstance(call, promql.Call) and call.func.name in {"rate", "irate", "increase"}
            ):
                yield f"{where}: counter {node.name} not aggregated with rate, irate or increase"


RULES: Final[dict[str, Rule]] = {
    "template-datasource-rule": template_datasource_rule,
    "template-job-rule": template_rule("job"),
    "template-instance-rule": template_rule("instance"),
    "template-label-promql-rule": template_label_promql_rule,
    "template-on-time-change-reload-rule": template_on_time_change_reload_rule,
    "panel-datasource-rule": panel_datasource_rule,
    "panel-title-description-rule": panel_title_description_rule,
    "panel-units-rule": panel_units_rule,
    "panel-no-targets-rule": panel_no_targets_rule,
    "target-promql-rule": target_promql_rule,
    "target-rate-interval-rule": target_rate_interval_rule,
    "target-job-rule": target_matcher_rule("job"),
    "target-instance-rule": target_matcher_rule("instance"),
    "target-counter-agg-rule": target_counter_agg_rule,
    "uneditable-dashboard": uneditable_dashboard,
}


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_is_lint_clean(name: str, rule: str) -> None:
    assert list(RULES[rule](load(name))) == []


def test_every_query_has_job_and_instance_matchers_in_every_selector() -> None:
    """What dashboard-linter's target rules check, counted: no selector anywhere escapes."""
    selectors = matchers = 0
    for name in UIDS:
        for _, expr in parsed(load(name)):
            selectors += sum(isinstance(n, promql.VectorSelector) for n, _ in walk(expr))
        matchers += sum(t["expr"].count('job=~"$job"') for _, t in targets(load(name)))
    # The walk reaches every selector there is: as many as the job matchers written.
    assert selectors == matchers > 200


# --- the rules can fail --------------------------------------------------------------------------


def broken(name: str, change: Callable[[Dashboard], None]) -> Dashboard:
    dashboard = copy.deepcopy(load(name))
    change(dashboard)
    return dashboard


def first_target(d: Dashboard) -> dict[str, Any]:
    return next(t for _, t in targets(d))


def set_expr(expr: str) -> Callable[[Dashboard], None]:
    def change(d: Dashboard) -> None:
        first_target(d)["expr"] = expr

    return change


def variable(d: Dashboard, name: str) -> dict[str, Any]:
    return next(v for v in d["templating"]["list"] if v["name"] == name)


def without(name: str) -> Callable[[Dashboard], None]:
    def change(d: Dashboard) -> None:
        d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != name]

    return change


BREAKAGES: Final[list[tuple[str, Callable[[Dashboard], None]]]] = [
    ("uneditable-dashboard", lambda d: d.update(editable=True)),
    ("target-job-rule", set_expr('sum(saas_backup_up{instance=~"$instance"})')),
    ("target-job-rule", set_expr('saas_backup_up{job="saas-backup", instance=~"$instance"}')),
    (
        "target-instance-rule",
        set_expr('x{job=~"$job", instance=~"$instance"} / y{job=~"$job"}'),
    ),
    (
        "target-rate-interval-rule",
        set_expr('rate(a_total{job=~"$job", instance=~"$instance"}[5m])'),
    ),
    ("target-counter-agg-rule", set_expr('sum(a_total{job=~"$job", instance=~"$instance"})')),
    (
        "target-counter-agg-rule",
        set_expr('max_over_time(a_total{job=~"$job", instance=~"$instance"}[$__rate_interval])'),
    ),
    ("target-promql-rule", set_expr('sum(up{job=~"$job", instance=~"$instance"}')),
    ("template-job-rule", lambda d: variable(d, "job").update(allValue=".*")),
    ("template-instance-rule", lambda d: variable(d, "instance").update(multi=False)),
    ("template-instance-rule", without("instance")),
    ("template-job-rule", without("job")),
    ("template-on-time-change-reload-rule", lambda d: variable(d, "source").update(refresh=1)),
    ("template-label-promql-rule", lambda d: variable(d, "source").update(query="up{")),
    ("template-datasource-rule", lambda d: variable(d, "datasource").update(name="prom")),
    ("panel-datasource-rule", lambda d: d["panels"][0].update(datasource={"uid": "abc"})),
    ("panel-title-description-rule", lambda d: d["panels"][0].update(description="")),
    (
        "panel-units-rule",
        lambda d: d["panels"][-1]["fieldConfig"]["defaults"].update(unit="seconds"),
    ),
    ("panel-no-targets-rule", lambda d: d["panels"][0].update(targets=[])),
]


@pytest.mark.parametrize(("rule", "change"), BREAKAGES)
def test_each_rule_can_fail(rule: str, change: Callable[[Dashboard], None]) -> None:
    assert list(RULES[rule](broken("fleet-overview.json", change)))

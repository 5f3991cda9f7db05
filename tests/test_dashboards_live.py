"""The dashboards against the exporter: every PromQL expression in every panel and template
variable runs through a real Prometheus that scrapes the demo fleet, and the statuses the
exporter emits all have colours. Prometheus scrapes the exporter as two replicas (instances
replica-a and replica-b, as a high-availability pair would be): nothing may count twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dashboards import problems, widgets
from dashboards.queries import ZERO_SUFFIX
from exporter.app import build_app
from exporter.cli import demo_config
from exporter.model import BACKUP_STATUSES, CUSTOMER_STATUSES
from exporter.simulator.app import Simulator
from tests.conftest import Prometheus, ServerThread, samples
from tests.test_dashboards import UIDS, load, panels, variables

# Panels that must show data for the demo fleet, which has a bit of everything.
CORE = {
    "saas-backup-fleet": {
        "Sources",
        "Data age",
        "Unreadable customers",
        "Customers needing attention",
        "Failed backups",
        "Customers",
        "Licensed seats",
        "Backed up in 24 h",
        "Stale seats",
        "Never backed up",
        "Running backups",
        "Failed restores, 24 h",
        "Services not backed up",
        "Customers, worst first",
        "Seats by license state",
        "Stale licensed seats",
        "Services not backed up in the last day",
    },
    "saas-backup-customer": {
        "Problems",
        "Seats, worst first",
        "Applications",
        "Running backups",
        "Recent restore jobs",
        "Services not backed up",
        "Uningested services",
        "Used storage",
        "Billable seats",
        "Application protection",
        "Services backed up in the last day",
        "Used storage by application",
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
# Every exporter job and replica, as the job and instance variables open.
EVERY_EXPORTER = {"job": ".+", "instance": ".+"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
# dashboards.queries' fallbacks: 0 while the sources are up (while_up), or where the vendor
# reports the thing at all (where_reported).
FALLBACK = re.compile(
    "\n(?:" + re.escape(ZERO_SUFFIX) + r"[^\n]+|or on \(\) count\([^\n]+\) \* 0)$"
)
REPLICAS = ("replica-a", "replica-b")
# Core panels whose real answer for the demo fleet is 0.
NONE_IN_THE_DEMO = {"Unreadable customers"}


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
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{exporter.port}"],
                                "labels": {"instance": replica},
                            }
                            for replica in REPLICAS
                        ],
                    }
                ],
            },
        ).start()
        try:
            prometheus.wait_for(
                "count(saas_backup_up == 1)", lambda r: r and r[0]["value"][1] == "6"
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
        values[name] = variable.get("allValue") or ".*"
    return values


@pytest.mark.tools
@pytest.mark.parametrize("name", sorted(UIDS))
def test_every_query_runs_and_core_panels_have_data(live: Live, name: str) -> None:
    dashboard = load(name)
    outcomes = run_dashboard(live, dashboard, match_all_values(live, dashboard))
    errors = [f"{o.panel} [{o.ref}]: {o.error}\n{o.expr}" for o in outcomes if o.error]
    assert not errors, "\n\n".join(errors)
    if name != "exporter-health.json":
        # Each thing once, whichever replica reported it: nothing is split by exporter.
        split = [
            o.panel for o in outcomes for r in o.result if {"job", "instance"} & set(r["metric"])
        ]
        assert not split, f"results split by exporter replica: {sorted(set(split))}"
    core = CORE[dashboard["uid"]]
    titles = {p["title"] for p in panels(dashboard)}
    assert core <= titles, f"core panels missing: {core - titles}"
    empty = []
    for outcome in outcomes:
        if outcome.panel not in core:
            continue
        if not outcome.result:
            empty.append(f"{outcome.panel} [{outcome.ref}]")
        elif outcome.panel in NONE_IN_THE_DEMO:
            continue  # its 0 and its count: tests/test_dashboards_worst.py
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
    rows = instant(outcomes, "Customers, worst first")
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
        for row in instant(outcomes, "Customers, worst first", "C")
    }
    assert column == {key: n for key, n in failed.items() if key in customers}
    assert any(column.values()), "the demo fleet has a failed backup"
    assert 0 in column.values(), "and customers whose newest backups did not fail"
    # Services not backed up in the last day: active less backed up, per application, where
    # that is more than 0 and the application is not paused at the vendor.
    states: dict[tuple[str, str, str], dict[str, float]] = {}
    paused: set[tuple[str, str, str]] = set()
    for (metric, label_set), v in exposed.items():
        labels = dict(label_set)
        app = (
            labels.get("source", ""),
            labels.get("customer_id", ""),
            labels.get("application", ""),
        )
        if metric == "saas_backup_application_services":
            states.setdefault(app, {})[labels["state"]] = v
        elif metric == "saas_backup_application_enabled" and v == 0:
            paused.add(app)
    missed = {
        app: counts["active"] - counts["backed_up"]
        for app, counts in states.items()
        if {"active", "backed_up"} <= set(counts)
        and counts["active"] > counts["backed_up"]
        and app not in paused
        and app[:2] in customers
    }
    rows = instant(outcomes, "Services not backed up in the last day")
    shown = {
        (r["metric"]["source"], r["metric"]["customer_id"], r["metric"]["application"]): float(
            r["value"][1]
        )
        for r in rows
    }
    assert shown == missed
    assert missed, "the demo fleet has services not backed up"


@pytest.mark.tools
def test_customer_detail_for_each_real_customer(live: Live) -> None:
    """As a user picks them: each source, then each of its customers from the picker."""
    dashboard = load("customer-detail.json")
    defined = variables(dashboard)
    seen: dict[str, int] = {}
    errors: list[str] = []
    page = page_levels(live)
    sources = resolve_variable(live.prometheus, defined["source"], {**BUILTINS, **EVERY_EXPORTER})
    assert sorted(sources) == ["backupify", "cloudally", "datto"]
    for source in sources:
        values = {**BUILTINS, **EVERY_EXPORTER, "source": source}
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
            # The drill-down: its problems, the worst as bad as the status page says.
            rows = instant(outcomes, "Problems")
            worst = max((float(r["value"][1]) for r in rows), default=0)
            assert problems.LEVELS[int(worst)] == page[(source, customer)], (customer, rows)
            assert all(r["metric"]["kind"] and r["metric"]["problem"] for r in rows)
    assert not errors, errors
    assert all(seen[panel] for panel in CORE["saas-backup-customer"]), seen


def page_levels(live: Live) -> dict[tuple[str, str], str]:
    """Each customer's level on the exporter's own status page; ok where it lists none."""
    page = httpx.get(live.exporter.url + "/", timeout=30).text
    rows = re.findall(
        r'<tr data-source="([^"]*)" data-customer="([^"]*)">.*?<span class="s ([a-z]+)">', page
    )
    levels = {(source, customer): level for source, customer, level in rows}
    assert "failed" in levels.values(), "the demo fleet has failures"
    body = httpx.get(live.exporter.url + "/metrics", timeout=30).text
    for (metric, labels), _ in samples(body).items():
        if metric == "saas_backup_customer_info":
            found = dict(labels)
            levels.setdefault((found["source"], found["customer_id"]), "ok")
    return levels


@pytest.mark.tools
def test_fleet_sorts_worst_first_as_the_status_page_judges(live: Live) -> None:
    """Each customer's state is the status page's, and the fleet sorts by it: customers whose
    vendor gives no per-seat times (the live Datto shape) rank by their services and their last
    fully protected time, above every healthy customer."""
    dashboard = load("fleet-overview.json")
    outcomes = run_dashboard(live, dashboard, match_all_values(live, dashboard))
    page = page_levels(live)
    keys = {
        (r["metric"]["source"], r["metric"]["customer_id"]): float(r["value"][1])
        for r in instant(outcomes, "Customers, worst first")
    }
    assert {c: problems.LEVELS[int(k)] for c, k in keys.items()} == page
    (attention,) = instant(outcomes, "Customers needing attention")
    needing = [c for c, level in page.items() if level in {"failed", "unreadable", "stale"}]
    assert float(attention["value"][1]) == len(needing) > 0
    ranked = sorted(keys, key=lambda c: -keys[c])
    body = httpx.get(live.exporter.url + "/metrics", timeout=30).text
    timed = {
        (dict(labels)["source"], dict(labels)["customer_id"])
        for (metric, labels) in samples(body)
        if metric == "saas_backup_seat_last_backup_timestamp_seconds"
    }
    untimed_stale = [c for c in needing if c[0] == "datto" and c not in timed]
    assert untimed_stale, "the demo fleet has live-shaped customers with problems"
    first_healthy = min(ranked.index(c) for c, level in page.items() if level == "ok")
    assert all(ranked.index(c) < first_healthy for c in untimed_stale), ranked


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
    assert set(widgets.STATUS_COLOURS) == set(BACKUP_STATUSES)
    assert set(widgets.CUSTOMER_STATUS_COLOURS) == set(CUSTOMER_STATUSES)

"""The Grafana dashboards, as code: `make dashboards` writes dashboards/*.json from here.

Each dashboard takes its Prometheus data source from a `datasource` variable, so the JSON names
no data source of anyone's. Every selector matches variables with `=~`, so the same query works
for one value, several, or All (`.*`). Customers are shown by the display name joined from
saas_backup_customer_info; the join's right-hand side is `topk by (...) (1, ...)` so that two
info series for one customer (two exporters that disagree on a name just changed, say) cannot
break the join with a many-to-many error.

Thresholds follow the alert rules in alerts/saas-backup.rules.yml: a licensed seat is stale after
24 h and critical after 72 h; a backup running for 12 h is too long.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    StackingConfig,
    TableSortByFieldState,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    BigValueTextMode,
    GraphDrawStyle,
    GraphThresholdsStyleMode,
    LineInterpolation,
    StackingMode,
    TableCellDisplayMode,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE: Final = Path(__file__).parent
TAG: Final = "saas-backup"

FLEET_UID: Final = "saas-backup-fleet"
CUSTOMER_UID: Final = "saas-backup-customer"
HEALTH_UID: Final = "saas-backup-exporter"
JOB: Final = "saas-backup"  # the scrape job alerts/saas-backup.rules.yml expects

DATASOURCE: Final = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

DAY: Final = 86400
STALE: Final = DAY  # seconds; as SaaSBackupSeatsNotBackedUp24h
CRITICAL: Final = 3 * DAY  # as SaaSBackupSeatsNotBackedUp72h
LONG_RUN: Final = 12 * 3600  # as SaaSBackupRunningTooLong

GREEN: Final = "green"
ORANGE: Final = "orange"
RED: Final = "red"
BLUE: Final = "blue"
GREY: Final = "text"

# Grafana colours for the normalized backup and restore statuses (README: normalized values).
STATUS_COLOURS: Final = {
    "success": GREEN,
    "partial": ORANGE,
    "failed": RED,
    "cancelled": ORANGE,
    "running": BLUE,
    "pending": BLUE,
    "paused": ORANGE,
    "unknown": GREY,
}


# Customer statuses (exporter/model.py); the not-active ones raise SaaSBackupCustomerNotActive.
CUSTOMER_STATUS_COLOURS: Final = {
    "active": GREEN,
    "inactive": ORANGE,
    "suspended": RED,
    "cancelled": RED,
    "expired": RED,
    "unknown": GREY,
}


# --- building blocks ---------------------------------------------------------------------------


def sel(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


SOURCE: Final = 'source=~"$source"'
CUSTOMER: Final = 'customer_id=~"$customer"'
LICENSED: Final = 'license_state="licensed"'
FAILED: Final = 'status="failed"'
LICENSE_STATES: Final = 'license_state=~"$license_state"'
JOBS: Final = 'job=~"$job"'


def or_zero(expr: str, where: str | None = None) -> str:
    """A count that is 0, not "No data", when nothing matches.

    With `where`, 0 only when that finds something: a count the vendor may not report at all
    stays "No data" rather than claim a healthy 0. tests/test_dashboards.py strips these exact
    suffixes to prove the query before it finds data.
    """
    if where is None:
        return f"{expr} or vector(0)"
    return f"{expr}\nor on () count({where}) * 0"


def with_customer_name(expr: str, selector: str, labels: str = "customer_name") -> str:
    return (
        f"{expr}\n* on (source, customer_id) group_left ({labels})\n"
        f"topk by (source, customer_id) (1, saas_backup_customer_info{selector})"
    )


def query(
    expr: str,
    ref: str = "A",
    *,
    legend: str | None = None,
    instant: bool = False,
    as_table: bool = False,
) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend is not None:
        target = target.legend_format(legend)
    if as_table:
        target = target.format(PromQueryFormat.TABLE).instant()
    elif instant:
        target = target.instant()
    else:
        target = target.range()
    return target


def steps(base: str, *levels: tuple[float, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps(
            [dm.Threshold(value=None, color=base)]
            + [dm.Threshold(value=v, color=c) for v, c in levels]
        )
    )


AGE_STEPS: Final = steps(GREEN, (STALE, ORANGE), (CRITICAL, RED))
PROBLEM_STEPS: Final = steps(GREEN, (1, ORANGE))
FAILURE_STEPS: Final = steps(GREEN, (1, RED))
INFO_STEPS: Final = steps(BLUE)


def text_mappings(colours: dict[str, str]) -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                value: dm.ValueMappingResult(text=value, color=colour, index=index)
                for index, (value, colour) in enumerate(colours.items())
            }
        )
    ]


UP_MAPPINGS: Final[list[dm.ValueMapping]] = [
    dm.ValueMap(
        options={
            "0": dm.ValueMappingResult(text="DOWN", color=RED, index=0),
            "1": dm.ValueMappingResult(text="UP", color=GREEN, index=1),
        }
    )
]


# A timestamp that is NaN: nothing has finished yet.
NEVER_MAPPINGS: Final[list[dm.ValueMapping]] = [
    dm.SpecialValueMap(
        options=dm.DashboardSpecialValueMapOptions(
            match=dm.SpecialValueMatch.NA_N,
            result=dm.ValueMappingResult(text="never", color=RED, index=0),
        )
    )
]


def prop(name: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=name, value=value)


def column(
    name: str, *properties: dm.DynamicConfigValue
) -> tuple[str, list[dm.DynamicConfigValue]]:
    return name, list(properties)


def hidden() -> dm.DynamicConfigValue:
    return prop("custom.hidden", True)


def colour_background() -> dm.DynamicConfigValue:
    return prop("custom.cellOptions", {"type": TableCellDisplayMode.COLOR_BACKGROUND.value})


def colour_text() -> dm.DynamicConfigValue:
    return prop("custom.cellOptions", {"type": TableCellDisplayMode.COLOR_TEXT.value})


# Scrape labels say which exporter, not which customer: dropped from tables about customers.
SCRAPE_COLUMNS: Final = ("Time", "__name__", "instance", "job")


def merge_and_name(
    renames: dict[str, str], order: Iterable[str], exclude: Iterable[str]
) -> list[dm.DataTransformerConfig]:
    """Join one table query per column on their labels, then name and order the columns."""
    index = {name: position for position, name in enumerate(order)}
    return [
        dm.DataTransformerConfig(id_val="merge", options={}),
        dm.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": dict.fromkeys(exclude, True),
                "indexByName": index,
                "renameByName": renames,
            },
        ),
    ]


Panel = stat.Panel | table.Panel | timeseries.Panel


@dataclass
class Grid:
    """Places panels left to right in Grafana's 24-column grid, wrapping when a row is full."""

    panels: list[Panel] = field(default_factory=list)
    x: int = 0
    y: int = 0
    row_height: int = 0

    def add(self, panel: Panel, width: int, height: int) -> None:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel.id(len(self.panels) + 1).grid_pos(dm.GridPos(h=height, w=width, x=self.x, y=self.y))
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)


def stat_panel(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str = "none",
    thresholds: db.ThresholdsConfig = INFO_STEPS,
    mappings: list[dm.ValueMapping] | None = None,
    text_mode: BigValueTextMode = BigValueTextMode.AUTO,
    decimals: float | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(thresholds)
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.NONE)
        .text_mode(text_mode)
    )
    if mappings:
        panel = panel.mappings(mappings)
    if decimals is not None:
        panel = panel.decimals(decimals)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def table_panel(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    columns: Iterable[tuple[str, list[dm.DynamicConfigValue]]] = (),
    renames: dict[str, str],
    order: Iterable[str],
    sort_by: str,
    descending: bool = True,
    exclude: Iterable[str] = SCRAPE_COLUMNS,
) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .filterable(True)
        .sort_by([TableSortByFieldState().display_name(sort_by).desc(descending)])
        .transformations(merge_and_name(renames, order, exclude))
    )
    for target in targets:
        panel = panel.with_target(target)
    for name, properties in columns:
        panel = panel.override_by_name(name, properties)
    return panel


def timeseries_panel(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str = "none",
    stacked: bool = False,
    stepped: bool = False,
    thresholds: db.ThresholdsConfig | None = None,
    min_value: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .draw_style(GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(25 if stacked else 10)
    )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    if stepped:
        panel = panel.line_interpolation(LineInterpolation.STEP_AFTER)
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)
        )
    if min_value is not None:
        panel = panel.min(min_value)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def source_variable(*, include_all: bool, within: str = "") -> db.QueryVariable:
    variable = (
        db.QueryVariable("source")
        .label("Source")
        .description("A source configured in the exporter (one vendor account).")
        .datasource(DATASOURCE)
        .query(f"label_values(saas_backup_up{within}, source)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    if include_all:
        variable = (
            variable.multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    return variable


def dashboard_links() -> list[cogbuilder.Builder[dm.DashboardLink]]:
    return [
        db.DashboardLink("SaaS backup")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(False)
        .keep_time(True)
    ]


def new_dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("browser")
        .refresh("1m")
        .time("now-24h", "now")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .links(dashboard_links())
        .with_variable(datasource_variable())
    )


def finish(dashboard: db.Dashboard, grid: Grid) -> dict[str, Any]:
    for panel in grid.panels:
        dashboard = dashboard.with_panel(panel)
    encoded: dict[str, Any] = json.loads(JSONEncoder().encode(dashboard.build()))
    return encoded


# --- Fleet overview ----------------------------------------------------------------------------

SEAT_TIME: Final = "saas_backup_seat_last_backup_timestamp_seconds"
SEAT_AGE: Final = f"time() - {SEAT_TIME}"
BY_CUSTOMER: Final = "on (source, customer_id)"


def backed_up_share(s: str) -> str:
    """Backed-up share over the fleet, from seat times where a customer has them.

    Per customer: where the vendor reports per-seat backup state (a seat time, or a seat never
    backed up), (licensed - stale - never) of licensed seats; otherwise (live Datto seats carry
    none) the vendor's backupStats services. A customer with neither (Backupify v1, CloudAlly) is
    left out rather than counted as healthy. A customer whose seats were all never backed up has
    no seat time but is still judged by its seats: 0, not left out.
    """
    licensed = f"sum by (source, customer_id) (saas_backup_seats{sel(s, LICENSED)})"
    stale = f"sum by (source, customer_id) ({SEAT_AGE}{sel(s, LICENSED)} > bool {STALE})"
    never = f"sum by (source, customer_id) (saas_backup_seats_never_backed_up{sel(s, LICENSED)})"
    timed = f"({stale}\n    or {never})"
    services = "sum by (source, customer_id) (saas_backup_customer_services{%s})"
    recent = services % ", ".join([s, 'state="backed_up_recently"'])
    active = services % ", ".join([s, 'state="active"'])
    seats_ok = (
        f"({licensed}\n  - {BY_CUSTOMER} ({stale} or {never} * 0)"
        f"\n  - {BY_CUSTOMER} ({never} or {stale} * 0))"
    )
    seats_all = f"({licensed}\n  and {BY_CUSTOMER} {timed})"
    return (
        f"sum(\n  {seats_ok}\n  or ({recent}\n    unless {BY_CUSTOMER} {timed})\n)\n/\n"
        f"sum(\n  {seats_all}\n  or ({active}\n    unless {BY_CUSTOMER} {timed})\n)"
    )


def fleet_overview() -> dict[str, Any]:
    s = SOURCE
    stale = f"sum({SEAT_AGE}{sel(s, LICENSED)} > bool {STALE})"
    never = f"sum(saas_backup_seats_never_backed_up{sel(s, LICENSED)})"
    grid = Grid()
    stats: list[tuple[Panel, int]] = [
        (
            stat_panel(
                "Customers",
                "Protected customers (tenants) across the selected sources.",
                query(
                    f"count(max by (source, customer_id) (saas_backup_customer_info{sel(s)}))",
                    instant=True,
                ),
            ),
            3,
        ),
        (
            stat_panel(
                "Licensed seats",
                "Seats holding a backup license: the seats that should be backed up.",
                query(f"sum(saas_backup_seats{sel(s, LICENSED)})", instant=True),
            ),
            3,
        ),
        (
            stat_panel(
                "Backed up in 24 h",
                "Share of licensed seats whose last backup is less than 24 hours old; seats "
                "never backed up count as not backed up. For a customer whose vendor gives no "
                "per-seat backup times (Datto's live API), the vendor's own count of active "
                "services with a recent backup stands in.",
                query(backed_up_share(s), instant=True),
                unit="percentunit",
                thresholds=steps(RED, (0.9, ORANGE), (0.99, GREEN)),
                decimals=1,
            ),
            4,
        ),
        (
            stat_panel(
                "Stale seats",
                "Licensed seats whose last backup is more than 24 hours old, where the vendor "
                "reports per-seat backup times.",
                query(stale, instant=True),
                thresholds=PROBLEM_STEPS,
            ),
            3,
        ),
        (
            stat_panel(
                "Never backed up",
                "Licensed seats the vendor reports as never backed up. No data where no vendor "
                "reports per-seat backup state.",
                query(or_zero(never, f"{SEAT_TIME}{sel(s, LICENSED)}"), instant=True),
                thresholds=PROBLEM_STEPS,
            ),
            3,
        ),
        (
            stat_panel(
                "Running backups",
                "Backups in progress now.",
                query(
                    or_zero(f"count(saas_backup_active_backup_start_timestamp_seconds{sel(s)})"),
                    instant=True,
                ),
            ),
            4,
        ),
        (
            stat_panel(
                "Failed restores, 24 h",
                "Restore and download jobs that failed in the last 24 hours.",
                query(
                    or_zero(
                        "count(time() - saas_backup_restore_job_end_timestamp_seconds"
                        f"{sel(s, FAILED)} < {DAY})"
                    ),
                    instant=True,
                ),
                thresholds=FAILURE_STEPS,
            ),
            4,
        ),
    ]
    for panel, width in stats:
        grid.add(panel, width, 4)

    def per_customer(expr: str) -> str:
        return with_customer_name(expr, sel(s), "customer_name, product, status")

    worst_age = (
        "max by (source, customer_id) (\n"
        f"  ({SEAT_AGE}{sel(s, LICENSED)})\n"
        f"  or (time() - saas_backup_application_last_backup_timestamp_seconds{sel(s)})\n"
        f"  or (time() - saas_backup_last_backup_end_timestamp_seconds{sel(s)})\n"
        ")"
    )

    def newest_runs(selector: str) -> str:
        return (
            f"saas_backup_last_backup_end_timestamp_seconds{selector}"
            f" or saas_backup_application_last_backup_status{selector}"
        )

    # 0 only for customers whose vendor reports run statuses at all.
    failed_runs = (
        f"(\n  count by (source, customer_id) ({newest_runs(sel(s, FAILED))})\n"
        f"  or {BY_CUSTOMER} count by (source, customer_id) ({newest_runs(sel(s))}) * 0\n)"
    )
    customer_link = (
        f"/d/{CUSTOMER_UID}/saas-backup-customer-detail?${{__url_time_range}}"
        "&${datasource:queryparam}&var-source=${__data.fields.source}"
        "&var-customer=${__data.fields.customer_id}"
    )
    grid.add(
        table_panel(
            "Customers by worst backup age",
            "Each customer's oldest last backup, over its licensed seats, applications and "
            "backup instances, whatever that backup's status. Failed backups: applications and "
            "backup instances whose newest backup failed. Seats never backed up have no age; "
            "they have their own column. Click a customer for its detail.",
            query(per_customer(worst_age), "A", as_table=True),
            query(
                per_customer(f"sum by (source, customer_id) (saas_backup_seats{sel(s, LICENSED)})"),
                "B",
                as_table=True,
            ),
            query(
                per_customer(
                    f"sum by (source, customer_id) ({SEAT_AGE}{sel(s, LICENSED)} > bool {STALE})"
                ),
                "C",
                as_table=True,
            ),
            query(
                per_customer(
                    "sum by (source, customer_id) "
                    f"(saas_backup_seats_never_backed_up{sel(s, LICENSED)})"
                ),
                "D",
                as_table=True,
            ),
            query(
                per_customer(f"min by (source, customer_id) (saas_backup_customer_up{sel(s)})"),
                "E",
                as_table=True,
            ),
            query(per_customer(failed_runs), "F", as_table=True),
            renames={
                "customer_name": "Customer",
                "source": "Source",
                "product": "Product",
                "status": "Status",
                "Value #A": "Worst backup age",
                "Value #B": "Licensed seats",
                "Value #C": "Stale seats",
                "Value #D": "Never backed up",
                "Value #E": "Readable",
                "Value #F": "Failed backups",
            },
            order=[
                "customer_name",
                "Value #A",
                "Value #F",
                "Value #C",
                "Value #D",
                "Value #B",
                "Value #E",
                "status",
                "product",
                "source",
                "customer_id",
            ],
            sort_by="Worst backup age",
            columns=[
                column(
                    "Customer",
                    prop("links", [{"title": "Customer detail", "url": customer_link}]),
                ),
                column("customer_id", prop("displayName", "Customer ID")),
                column(
                    "Worst backup age",
                    prop("unit", "s"),
                    prop("thresholds", AGE_STEPS.build()),
                    colour_background(),
                ),
                column("Failed backups", prop("thresholds", FAILURE_STEPS.build()), colour_text()),
                column("Stale seats", prop("thresholds", PROBLEM_STEPS.build()), colour_text()),
                column("Never backed up", prop("thresholds", PROBLEM_STEPS.build()), colour_text()),
                column(
                    "Readable",
                    prop(
                        "mappings",
                        [
                            dm.ValueMap(
                                options={
                                    "0": dm.ValueMappingResult(text="no", color=RED, index=0),
                                    "1": dm.ValueMappingResult(text="yes", color=GREEN, index=1),
                                }
                            )
                        ],
                    ),
                    colour_text(),
                ),
                column(
                    "Status",
                    prop("mappings", text_mappings(CUSTOMER_STATUS_COLOURS)),
                    colour_text(),
                ),
            ],
        ),
        24,
        12,
    )
    grid.add(
        timeseries_panel(
            "Seats by license state",
            "Seats per license state: licensed seats are backed up, the others are not.",
            query(
                f"sum by (license_state) (saas_backup_seats{sel(s)})", legend="{{license_state}}"
            ),
            stacked=True,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Stale licensed seats",
            "Licensed seats whose last backup is older than 24 h and 72 h, per source.",
            query(
                f"sum by (source) ({SEAT_AGE}{sel(s, LICENSED)} > bool {STALE})",
                "A",
                legend="{{source}} > 24 h",
            ),
            query(
                f"sum by (source) ({SEAT_AGE}{sel(s, LICENSED)} > bool {CRITICAL})",
                "B",
                legend="{{source}} > 72 h",
            ),
            min_value=0,
        ),
        12,
        8,
    )
    dashboard = new_dashboard(
        FLEET_UID,
        "SaaS backup / Fleet overview",
        "Every customer's SaaS backups at a glance: are seats being backed up, and who is worst.",
    ).with_variable(source_variable(include_all=True))
    return finish(dashboard, grid)


# --- Customer detail ---------------------------------------------------------------------------


def customer_variable() -> db.QueryVariable:
    # Grafana renders each query_result series as {label="value",...} with the labels sorted,
    # so customer_id comes before customer_label; the regex takes the id as the value and the
    # "name · id" label as the text (names alone are not unique).
    return (
        db.QueryVariable("customer")
        .label("Customer")
        .description("A customer of the selected source, by display name and id.")
        .datasource(DATASOURCE)
        .query(
            "query_result(max by (customer_id, customer_label) (label_join("
            'saas_backup_customer_info{source=~"$source"}, "customer_label", " · ", '
            '"customer_name", "customer_id")))'
        )
        .regex('/customer_id="(?<value>[^"]+)",customer_label="(?<text>[^"]*)"/')
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def license_state_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("license_state")
        .label("Seats")
        .description("License states of the seats listed; seats not licensed are not backed up.")
        .datasource(DATASOURCE)
        .query(f"label_values(saas_backup_seats{sel(SOURCE, CUSTOMER)}, license_state)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text=["licensed"], value=["licensed"]))
    )


def customer_detail() -> dict[str, Any]:
    c = sel(SOURCE, CUSTOMER)
    cl = sel(SOURCE, CUSTOMER, LICENSED)
    grid = Grid()
    grid.add(
        stat_panel(
            "Customer",
            "Display name, product and status as the vendor reports them.",
            query(
                f"topk(1, saas_backup_customer_info{c})",
                legend="{{customer_name}} · {{product}} · {{status}}",
                instant=True,
            ),
            text_mode=BigValueTextMode.NAME,
        ),
        8,
        4,
    )
    grid.add(
        stat_panel(
            "Readable",
            "Whether every read of this customer worked in the exporter's last refresh.",
            query(f"min(saas_backup_customer_up{c})", instant=True),
            mappings=UP_MAPPINGS,
            thresholds=steps(RED, (1, GREEN)),
        ),
        3,
        4,
    )
    grid.add(
        stat_panel(
            "Licensed seats",
            "Seats holding a backup license.",
            query(f"sum(saas_backup_seats{cl})", instant=True),
        ),
        3,
        4,
    )
    grid.add(
        stat_panel(
            "Stale seats",
            "Licensed seats whose last backup is more than 24 hours old.",
            query(f"sum({SEAT_AGE}{cl} > bool {STALE})", instant=True),
            thresholds=PROBLEM_STEPS,
        ),
        3,
        4,
    )
    grid.add(
        stat_panel(
            "Never backed up",
            "Licensed seats the vendor reports as never backed up. No data where the vendor "
            "reports no per-seat backup state.",
            query(
                or_zero(f"sum(saas_backup_seats_never_backed_up{cl})", f"{SEAT_TIME}{cl}"),
                instant=True,
            ),
            thresholds=PROBLEM_STEPS,
        ),
        3,
        4,
    )
    grid.add(
        stat_panel(
            "Backup ratio",
            "Share of the customer's active services with a recent backup, per the vendor.",
            query(f"min(saas_backup_customer_backup_ratio{c})", instant=True),
            unit="percentunit",
            thresholds=steps(RED, (0.9, ORANGE), (0.99, GREEN)),
            decimals=1,
        ),
        4,
        4,
    )
    grid.add(
        table_panel(
            "Seats, worst first",
            "Seats in the chosen license states, by the age of their last backup. Seats never "
            "backed up have no age and are counted above; with metrics.max_seat_series set, the "
            "most recently backed-up seats may be left out.",
            query(
                f"({SEAT_AGE}{sel(SOURCE, CUSTOMER, LICENSE_STATES)})\n"
                "* on (source, customer_id, seat_id) group_left (seat_name)\n"
                f"topk by (source, customer_id, seat_id) (1, saas_backup_seat_info{c})",
                as_table=True,
            ),
            renames={
                "seat_name": "Seat",
                "seat_type": "Type",
                "license_state": "License",
                "Value": "Last backup age",
                "seat_id": "Seat ID",
            },
            order=["seat_name", "seat_type", "license_state", "Value", "seat_id"],
            sort_by="Last backup age",
            columns=[
                column(
                    "Last backup age",
                    prop("unit", "s"),
                    prop("thresholds", AGE_STEPS.build()),
                    colour_background(),
                ),
                column("source", hidden()),
                column("customer_id", hidden()),
            ],
        ),
        24,
        12,
    )
    applications = (
        "max by (source, customer_id, application, status) (\n"
        f"  saas_backup_application_last_backup_timestamp_seconds{c}\n"
        "  * on (source, customer_id, application) group_left (status)\n"
        "  topk by (source, customer_id, application) "
        f"(1, saas_backup_application_last_backup_status{c})\n"
        "  or\n"
        "  label_replace(\n"
        f"    saas_backup_last_backup_end_timestamp_seconds{c}\n"
        "    * on (source, customer_id, instance_id) group_left (instance_name)\n"
        "    topk by (source, customer_id, instance_id) "
        f"(1, saas_backup_backup_instance_info{c}),\n"
        '    "application", "$1", "instance_name", "(.*)"\n'
        "  )\n"
        "  or\n"
        f"  saas_backup_application_last_backup_status{c} * NaN\n"
        "  unless on (source, customer_id, application)\n"
        f"  saas_backup_application_last_backup_timestamp_seconds{c}\n"
        ") * 1000"
    )
    grid.add(
        table_panel(
            "Applications",
            "Each application's (or backup instance's) newest finished backup, and the status "
            "of its newest backup, which may still be running. Never: no backup has finished.",
            query(applications, as_table=True),
            renames={"application": "Application", "status": "Status", "Value": "Last backup"},
            order=["application", "status", "Value"],
            sort_by="Last backup",
            descending=False,
            columns=[
                column(
                    "Last backup",
                    prop("unit", "dateTimeFromNow"),
                    prop("mappings", NEVER_MAPPINGS),
                ),
                column(
                    "Status", prop("mappings", text_mappings(STATUS_COLOURS)), colour_background()
                ),
                column("source", hidden()),
                column("customer_id", hidden()),
            ],
        ),
        12,
        10,
    )
    running = (
        f"(time() - saas_backup_active_backup_start_timestamp_seconds{c})\n"
        "* on (source, customer_id, instance_id) group_left (instance_name)\n"
        f"topk by (source, customer_id, instance_id) (1, saas_backup_backup_instance_info{c})\n"
        "or on (source, customer_id, instance_id)\n"
        f"(time() - saas_backup_active_backup_start_timestamp_seconds{c})"
    )
    grid.add(
        table_panel(
            "Running backups",
            "Backups in progress and how long they have run; over 12 hours is too long.",
            query(running, as_table=True),
            renames={"instance_name": "Backup", "instance_id": "Instance", "Value": "Running for"},
            order=["instance_name", "Value", "instance_id"],
            sort_by="Running for",
            columns=[
                column(
                    "Running for",
                    prop("unit", "s"),
                    prop("thresholds", steps(GREEN, (LONG_RUN, ORANGE)).build()),
                    colour_background(),
                ),
                column("source", hidden()),
                column("customer_id", hidden()),
            ],
        ),
        12,
        10,
    )
    restore_start = f"saas_backup_restore_job_start_timestamp_seconds{c}"
    restore_end = f"saas_backup_restore_job_end_timestamp_seconds{c}"
    grid.add(
        table_panel(
            "Recent restore jobs",
            "Restore and download jobs started within the exporter's restore window.",
            query(f"{restore_start} * 1000", "A", as_table=True),
            query(
                f"({restore_end} - {restore_start})\nor (time() - {restore_start})",
                "B",
                as_table=True,
            ),
            renames={
                "job_id": "Job",
                "type": "Type",
                "status": "Status",
                "Value #A": "Started",
                "Value #B": "Duration",
            },
            order=["job_id", "type", "status", "Value #A", "Value #B"],
            sort_by="Started",
            columns=[
                column("Started", prop("unit", "dateTimeFromNow")),
                column("Duration", prop("unit", "s")),
                column(
                    "Status", prop("mappings", text_mappings(STATUS_COLOURS)), colour_background()
                ),
                column("source", hidden()),
                column("customer_id", hidden()),
            ],
        ),
        24,
        9,
    )
    dashboard = (
        new_dashboard(
            CUSTOMER_UID,
            "SaaS backup / Customer detail",
            "One customer's seats, applications, running backups and restore jobs.",
        )
        .with_variable(source_variable(include_all=False))
        .with_variable(customer_variable())
        .with_variable(license_state_variable())
    )
    return finish(dashboard, grid)


# --- Exporter health ---------------------------------------------------------------------------


def job_variable() -> db.TextBoxVariable:
    # Typed, not looked up: an exporter that is down, or never came up, exports no series to
    # find its job by, and that is when this dashboard is needed.
    option = dm.VariableOption(selected=True, text=JOB, value=JOB)
    return (
        db.TextBoxVariable("job")
        .label("Job")
        .description(
            f"The Prometheus scrape job (a regex) of the exporter; the alert rules expect {JOB}."
        )
        .default_value(JOB)
        .current(option)
        .options([option])
    )


def exporter_health() -> dict[str, Any]:
    s = sel(SOURCE, JOBS)
    grid = Grid()
    grid.add(
        stat_panel(
            "Source up",
            "Whether each source's last refresh succeeded.",
            query(f"saas_backup_up{s}", legend="{{source}}", instant=True),
            mappings=UP_MAPPINGS,
            thresholds=steps(RED, (1, GREEN)),
        ),
        8,
        4,
    )
    grid.add(
        stat_panel(
            "Last successful refresh",
            "When each source last refreshed successfully.",
            query(
                f"saas_backup_last_refresh_success_timestamp_seconds{s} * 1000",
                legend="{{source}}",
                instant=True,
            ),
            unit="dateTimeFromNow",
        ),
        8,
        4,
    )
    grid.add(
        stat_panel(
            "Unreadable customers",
            "Customers with a read that failed in the last refresh.",
            query(f"sum(saas_backup_customer_up{s} == bool 0)", instant=True),
            thresholds=PROBLEM_STEPS,
        ),
        4,
        4,
    )
    grid.add(
        stat_panel(
            "Seat series dropped",
            "Seats left out of the per-seat series by metrics.max_seat_series.",
            query(f"sum(saas_backup_seat_series_dropped{s})", instant=True),
            thresholds=PROBLEM_STEPS,
        ),
        4,
        4,
    )
    grid.add(
        timeseries_panel(
            "Source up",
            "1 while a source's refreshes succeed, 0 while they fail.",
            query(f"saas_backup_up{s}", legend="{{source}}"),
            stepped=True,
            min_value=0,
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Refresh duration",
            "How long each source's last completed refresh took.",
            query(f"saas_backup_refresh_duration_seconds{s}", legend="{{source}}"),
            unit="s",
            min_value=0,
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Cache age",
            "Age of the oldest vendor response behind each source's served data.",
            query(f"saas_backup_cache_age_seconds{s}", legend="{{source}}"),
            unit="s",
            min_value=0,
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "API requests by status code",
            "Vendor API requests per second by source and HTTP status code.",
            query(
                "sum by (source, code) "
                f"(rate(saas_backup_api_requests_total{s}[$__rate_interval]))",
                legend="{{source}} {{code}}",
            ),
            unit="reqps",
            stacked=True,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Vendor API budget remaining",
            "Rate budget left, as the vendor last reported it.",
            query(f"saas_backup_api_limit_remaining{s}", legend="{{source}}"),
            thresholds=steps(RED, (100, GREEN)),
            min_value=0,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Vendor API budget spent",
            "Rate budget consumed per second, by endpoint.",
            query(
                "sum by (source, endpoint) "
                f"(rate(saas_backup_api_limit_cost_total{s}[$__rate_interval]))",
                legend="{{source}} {{endpoint}}",
            ),
            stacked=True,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Parse errors",
            "Vendor values or records that could not be parsed and were dropped.",
            query(
                f"sum by (source) (increase(saas_backup_parse_errors_total{s}[$__rate_interval]))",
                legend="{{source}}",
            ),
            min_value=0,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Exporter scrapes",
            "Prometheus's own view: scrape success and duration of each exporter instance.",
            query(f"up{sel(JOBS)}", "A", legend="{{instance}} up"),
            query(f"scrape_duration_seconds{sel(JOBS)}", "B", legend="{{instance}} duration (s)"),
            min_value=0,
        ),
        12,
        8,
    )
    grid.add(
        table_panel(
            "Exporter instances",
            "Each scraped exporter and its version.",
            query(f"saas_backup_exporter_build_info{sel(JOBS)}", as_table=True),
            renames={"instance": "Instance", "job": "Job", "version": "Version"},
            order=["instance", "job", "version"],
            sort_by="Instance",
            descending=False,
            exclude=("Time", "__name__", "Value"),
        ),
        12,
        8,
    )
    dashboard = (
        new_dashboard(
            HEALTH_UID,
            "SaaS backup / Exporter health",
            "Is the exporter itself working: per-source refreshes, cache, vendor API use.",
        )
        .with_variable(job_variable())
        .with_variable(source_variable(include_all=True, within=sel(JOBS)))
    )
    return finish(dashboard, grid)


# --- output ------------------------------------------------------------------------------------

DASHBOARDS: Final[dict[str, Callable[[], dict[str, Any]]]] = {
    "fleet-overview.json": fleet_overview,
    "customer-detail.json": customer_detail,
    "exporter-health.json": exporter_health,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    target = Path(argv[0]) if argv else HERE
    for name in DASHBOARDS:
        (target / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

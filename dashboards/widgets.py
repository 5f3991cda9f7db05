"""Building blocks of the dashboards: colours, threshold steps, value mappings, table columns,
the grid, panel and variable builders, and the dashboard frame they go in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
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

from alerts.thresholds import BACKUP_RATIO_GOOD, BACKUP_RATIO_POOR
from dashboards.problems import LEVELS
from dashboards.queries import CRITICAL, DATASOURCE, JOB, NOT_FULLY_PROTECTED, STALE, sel

TAG: Final = "saas-backup"

FLEET_UID: Final = "saas-backup-fleet"
CUSTOMER_UID: Final = "saas-backup-customer"
HEALTH_UID: Final = "saas-backup-exporter"

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
# Time since an application's services were last all backed up: orange once a day has gone,
# red where SaaSBackupApplicationNotFullyProtected fires.
PROTECTION_STEPS: Final = steps(GREEN, (STALE, ORANGE), (NOT_FULLY_PROTECTED, RED))
PROBLEM_STEPS: Final = steps(GREEN, (1, ORANGE))
FAILURE_STEPS: Final = steps(GREEN, (1, RED))
INFO_STEPS: Final = steps(BLUE)
RATIO_STEPS: Final = steps(RED, (BACKUP_RATIO_POOR, ORANGE), (BACKUP_RATIO_GOOD, GREEN))


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


# Colours of the problem levels (dashboards/problems.py), as the status page paints them.
LEVEL_COLOURS: Final = {
    "ok": GREEN,
    "unprotected": "yellow",
    "stale": ORANGE,
    "unreadable": "purple",
    "failed": RED,
}


def level_mappings() -> list[dm.ValueMapping]:
    """A level, or a level plus less than a half (problems.sort_key), as its word."""
    return [
        dm.RangeMap(
            options=dm.DashboardRangeMapOptions(
                from_val=level,
                to=level + 0.5,
                result=dm.ValueMappingResult(text=word, color=LEVEL_COLOURS[word], index=level),
            )
        )
        for level, word in LEVELS.items()
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
    no_value: str | None = None,
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
    if no_value is not None:
        panel = panel.no_value(no_value)
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
    unit: str | None = None,
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
    if unit is not None:
        panel = panel.unit(unit)
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


# dashboard-linter's template-job-rule and template-instance-rule: multi-select, All as `.+`.
ALL: Final = ".+"


def all_of(variable: db.QueryVariable) -> db.QueryVariable:
    return (
        variable.multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def job_variable(metric: str = "saas_backup_up", default: str | None = None) -> db.QueryVariable:
    """The exporter's scrape jobs: every one by default, or `default` (for which all stays the
    choice when Prometheus has no such job)."""
    variable = all_of(
        db.QueryVariable("job")
        .label("Job")
        .description("The Prometheus scrape job of the exporter.")
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, job)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    if default is not None:
        variable = variable.current(
            dm.VariableOption(selected=True, text=[default], value=[default])
        )
    return variable


def instance_variable(metric: str = "saas_backup_up") -> db.QueryVariable:
    return all_of(
        db.QueryVariable("instance")
        .label("Instance")
        .description(
            "Exporter replicas. With several scraping the same vendors, each thing is counted "
            "once whichever replicas are chosen."
        )
        .datasource(DATASOURCE)
        .query(f"label_values({metric}{{{JOB}}}, instance)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def source_variable(*, include_all: bool) -> db.QueryVariable:
    variable = (
        db.QueryVariable("source")
        .label("Source")
        .description("A source configured in the exporter (one vendor account).")
        .datasource(DATASOURCE)
        .query(f"label_values(saas_backup_up{sel()}, source)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    return all_of(variable) if include_all else variable


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
    """A dashboard, not editable (change the generator, not the dashboard), with its data source
    variable; its job and instance variables are the caller's, after it."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .readonly()
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

"""The exporter health: is the exporter itself working, per source and per instance."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from alerts.thresholds import API_BUDGET_LOW, JOB
from dashboards.queries import JOBS, SOURCE, query, sel
from dashboards.widgets import (
    GREEN,
    HEALTH_UID,
    PROBLEM_STEPS,
    RED,
    UP_MAPPINGS,
    Grid,
    finish,
    new_dashboard,
    source_variable,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
)


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
            "Crawl progress",
            "Share of the customers each source's current crawl set out to read that it has "
            "read; 1 when none is pending.",
            query(f"saas_backup_crawl_progress{s}", legend="{{source}}"),
            unit="percentunit",
            min_value=0,
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "Customer data age",
            "Age of each source's customers' data: the oldest customer and the median.",
            query(
                f"max by (source) (saas_backup_customer_data_age_seconds{s})",
                "A",
                legend="{{source}} oldest",
            ),
            query(
                f"quantile by (source) (0.5, saas_backup_customer_data_age_seconds{s})",
                "B",
                legend="{{source}} median",
            ),
            unit="s",
            min_value=0,
        ),
        8,
        8,
    )
    grid.add(
        timeseries_panel(
            "API calls per hour: planned and allowed",
            "Calls per hour the TTLs need for the customers known now, and what the budget "
            "allows after its reserve (where a budget is known).",
            query(
                f"saas_backup_api_budget_planned_calls_per_hour{s}",
                "A",
                legend="{{source}} planned",
            ),
            query(
                f"saas_backup_api_budget_allowed_calls_per_hour{s}",
                "B",
                legend="{{source}} allowed",
            ),
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
            thresholds=steps(RED, (API_BUDGET_LOW, GREEN)),
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

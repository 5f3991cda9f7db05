"""The exporter health: is the exporter itself working, per source and per instance."""

from __future__ import annotations

from typing import Any

from alerts.thresholds import API_BUDGET_LOW, JOB
from dashboards.queries import CUSTOMER_KEY, SOURCE, per, query, sel
from dashboards.widgets import (
    GREEN,
    HEALTH_UID,
    PROBLEM_STEPS,
    RED,
    UP_MAPPINGS,
    Grid,
    finish,
    instance_variable,
    job_variable,
    new_dashboard,
    source_variable,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
)

# Per exporter replica: each series of this dashboard is one instance's, by design.
PER_INSTANCE = "{{source}} · {{instance}}"


def exporter_health() -> dict[str, Any]:
    s = sel(SOURCE)
    grid = Grid()
    grid.add(
        stat_panel(
            "Source up",
            "Whether each source's last refresh succeeded.",
            query(f"saas_backup_up{s}", legend=PER_INSTANCE, instant=True),
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
                legend=PER_INSTANCE,
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
            "Customers with a read that failed in the last refresh, at every replica that reads "
            "them.",
            query(
                f"sum({per(CUSTOMER_KEY, f'saas_backup_customer_up{s}')} == bool 0)", instant=True
            ),
            thresholds=PROBLEM_STEPS,
        ),
        4,
        4,
    )
    grid.add(
        stat_panel(
            "Seat series dropped",
            "Seats left out of the per-seat series by metrics.max_seat_series, at the replica "
            "that leaves out most.",
            query(f"sum({per('source', f'saas_backup_seat_series_dropped{s}')})", instant=True),
            thresholds=PROBLEM_STEPS,
        ),
        4,
        4,
    )
    grid.add(
        timeseries_panel(
            "Source up",
            "1 while a source's refreshes succeed, 0 while they fail.",
            query(f"saas_backup_up{s}", legend=PER_INSTANCE),
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
            query(f"saas_backup_refresh_duration_seconds{s}", legend=PER_INSTANCE),
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
            query(f"saas_backup_cache_age_seconds{s}", legend=PER_INSTANCE),
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
            query(f"saas_backup_crawl_progress{s}", legend=PER_INSTANCE),
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
                f"max by (source, instance) (saas_backup_customer_data_age_seconds{s})",
                "A",
                legend=PER_INSTANCE + " oldest",
            ),
            query(
                f"quantile by (source, instance) (0.5, saas_backup_customer_data_age_seconds{s})",
                "B",
                legend=PER_INSTANCE + " median",
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
                legend=PER_INSTANCE + " planned",
            ),
            query(
                f"saas_backup_api_budget_allowed_calls_per_hour{s}",
                "B",
                legend=PER_INSTANCE + " allowed",
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
                "sum by (source, instance, code) "
                f"(rate(saas_backup_api_requests_total{s}[$__rate_interval]))",
                legend=PER_INSTANCE + " {{code}}",
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
            query(f"saas_backup_api_limit_remaining{s}", legend=PER_INSTANCE),
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
                "sum by (source, instance, endpoint) "
                f"(rate(saas_backup_api_limit_cost_total{s}[$__rate_interval]))",
                legend=PER_INSTANCE + " {{endpoint}}",
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
                "sum by (source, instance) "
                f"(increase(saas_backup_parse_errors_total{s}[$__rate_interval]))",
                legend=PER_INSTANCE,
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
            query(f"up{sel()}", "A", legend="{{instance}} up"),
            query(f"scrape_duration_seconds{sel()}", "B", legend="{{instance}} duration (s)"),
            min_value=0,
        ),
        12,
        8,
    )
    grid.add(
        table_panel(
            "Exporter instances",
            "Each scraped exporter and its version.",
            query(f"saas_backup_exporter_build_info{sel()}", as_table=True),
            renames={"instance": "Instance", "job": "Job", "version": "Version"},
            order=["instance", "job", "version"],
            sort_by="Instance",
            descending=False,
            exclude=("Time", "__name__", "Value"),
            unit="none",
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
        .with_variable(job_variable("up", default=JOB))
        .with_variable(instance_variable("up"))
        .with_variable(source_variable(include_all=True))
    )
    return finish(dashboard, grid)

"""The fleet overview: every customer's backups at a glance, worst first."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import dashboard as dm

from alerts.thresholds import RESTORE_FAILED_WITHIN_HOURS, SEAT_CRITICAL_HOURS, SEAT_STALE_HOURS
from dashboards.queries import (
    BY_CUSTOMER,
    CRITICAL,
    FAILED,
    LICENSED,
    SEAT_AGE,
    SEAT_TIME,
    SOURCE,
    STALE,
    not_backed_up,
    or_zero,
    query,
    seconds,
    sel,
    services,
    with_customer_name,
)
from dashboards.widgets import (
    AGE_STEPS,
    CUSTOMER_STATUS_COLOURS,
    CUSTOMER_UID,
    FAILURE_STEPS,
    FLEET_UID,
    GREEN,
    PROBLEM_STEPS,
    RATIO_STEPS,
    RED,
    Grid,
    Panel,
    colour_background,
    colour_text,
    column,
    finish,
    new_dashboard,
    prop,
    source_variable,
    stat_panel,
    table_panel,
    text_mappings,
    timeseries_panel,
)


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
                f"Backed up in {SEAT_STALE_HOURS} h",
                f"Share of licensed seats whose last backup is less than {SEAT_STALE_HOURS} "
                "hours old; seats never backed up count as not backed up. For a customer whose "
                "vendor gives no per-seat backup times, the vendor's own count of active services "
                "with a recent backup stands in.",
                query(backed_up_share(s), instant=True),
                unit="percentunit",
                thresholds=RATIO_STEPS,
                decimals=1,
            ),
            4,
        ),
        (
            stat_panel(
                "Stale seats",
                f"Licensed seats whose last backup is more than {SEAT_STALE_HOURS} hours old, "
                "where the vendor reports per-seat backup times.",
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
                f"Failed restores, {RESTORE_FAILED_WITHIN_HOURS} h",
                "Restore and download jobs that failed in the last "
                f"{RESTORE_FAILED_WITHIN_HOURS} hours.",
                query(
                    or_zero(
                        "count(time() - saas_backup_restore_job_end_timestamp_seconds"
                        f"{sel(s, FAILED)} < {seconds(RESTORE_FAILED_WITHIN_HOURS)})"
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
            f"Licensed seats whose last backup is older than {SEAT_STALE_HOURS} h and "
            f"{SEAT_CRITICAL_HOURS} h, per source.",
            query(
                f"sum by (source) ({SEAT_AGE}{sel(s, LICENSED)} > bool {STALE})",
                "A",
                legend="{{source}}" + f" > {SEAT_STALE_HOURS} h",
            ),
            query(
                f"sum by (source) ({SEAT_AGE}{sel(s, LICENSED)} > bool {CRITICAL})",
                "B",
                legend="{{source}}" + f" > {SEAT_CRITICAL_HOURS} h",
            ),
            min_value=0,
        ),
        12,
        8,
    )
    missed = f"(\n(\n{not_backed_up(s)}\n) > 0\n)"
    missed_of = (
        f"(\n{services('active', s)}\nand on (source, customer_id, application)\n{missed}\n)"
    )
    grid.add(
        table_panel(
            "Services not backed up in the last day",
            "Customers' applications with active services that had no backup in the vendor's "
            "last daily window, as SaaSBackupServicesNotBackedUp counts them (applications "
            "paused at the vendor left out), most first. Click a customer for its detail.",
            query(with_customer_name(missed, sel(s)), "A", as_table=True),
            query(
                with_customer_name(missed_of, sel(s)),
                "B",
                as_table=True,
            ),
            renames={
                "customer_name": "Customer",
                "application": "Application",
                "source": "Source",
                "Value #A": "Not backed up",
                "Value #B": "Active services",
            },
            order=["customer_name", "application", "Value #A", "Value #B", "source", "customer_id"],
            sort_by="Not backed up",
            columns=[
                column(
                    "Customer",
                    prop("links", [{"title": "Customer detail", "url": customer_link}]),
                ),
                column("customer_id", prop("displayName", "Customer ID")),
                column("Not backed up", prop("unit", "none")),
                column("Active services", prop("unit", "none")),
            ],
        ),
        24,
        8,
    )
    dashboard = new_dashboard(
        FLEET_UID,
        "SaaS backup / Fleet overview",
        "Every customer's SaaS backups at a glance: are seats being backed up, and who is worst.",
    ).with_variable(source_variable(include_all=True))
    return finish(dashboard, grid)

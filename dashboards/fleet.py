"""The fleet overview: are we OK, in the top row; then every customer, the worst first."""

from __future__ import annotations

from typing import Any, Final

from alerts.thresholds import (
    RESTORE_FAILED_WITHIN_HOURS,
    SEAT_CRITICAL_HOURS,
    SEAT_STALE_HOURS,
    SOURCE_STALE_HOURS,
)
from dashboards.problems import ATTENTION, customer_levels, sort_key, worst_age
from dashboards.queries import (
    APPLICATION_KEY,
    BY_CUSTOMER,
    CRITICAL,
    CUSTOMER_KEY,
    FAILED,
    INSTANCE_KEY,
    JOB_KEY,
    LICENSED,
    SEAT_TIME,
    SOURCE,
    STALE,
    age,
    not_backed_up,
    per,
    query,
    seat_age,
    seat_counts,
    seconds,
    sel,
    services,
    sources_up,
    where_reported,
    while_up,
    with_customer_name,
)
from dashboards.widgets import (
    AGE_STEPS,
    CUSTOMER_STATUS_COLOURS,
    CUSTOMER_UID,
    FAILURE_STEPS,
    FLEET_UID,
    GREEN,
    ORANGE,
    PROBLEM_STEPS,
    RATIO_STEPS,
    RED,
    UP_MAPPINGS,
    Grid,
    Panel,
    colour_background,
    colour_text,
    column,
    finish,
    instance_variable,
    job_variable,
    level_mappings,
    new_dashboard,
    prop,
    source_variable,
    stat_panel,
    steps,
    table_panel,
    text_mappings,
    timeseries_panel,
)

M: Final = (SOURCE,)
S: Final = sel(SOURCE)
NEVER: Final = "saas_backup_seats_never_backed_up"
# What a count of problems shows when it cannot be known (see queries.while_up).
UNKNOWN: Final = "unknown"
CUSTOMER_LINK: Final = (
    f"/d/{CUSTOMER_UID}/saas-backup-customer-detail?${{__url_time_range}}"
    "&${datasource:queryparam}&${job:queryparam}&${instance:queryparam}"
    "&var-source=${__data.fields.source}&var-customer=${__data.fields.customer_id}"
)


def backed_up_share() -> str:
    """Backed-up share over the fleet, from seat times where a customer has them.

    Per customer: where the vendor reports per-seat backup state (a seat time, or a seat never
    backed up), (licensed - stale - never) of licensed seats; otherwise (live Datto seats carry
    none) the vendor's backupStats services. A customer with neither (Backupify v1, CloudAlly) is
    left out rather than counted as healthy. A customer whose seats were all never backed up has
    no seat time but is still judged by its seats: 0, not left out.
    """
    licensed = f"sum by ({CUSTOMER_KEY}) ({seat_counts('saas_backup_seats', *M, LICENSED)})"
    stale = f"sum by ({CUSTOMER_KEY}) ({seat_age(*M, LICENSED)} > bool {STALE})"
    never = f"sum by ({CUSTOMER_KEY}) ({seat_counts(NEVER, *M, LICENSED)})"
    timed = f"({stale}\n    or {never})"

    def customer_services(state: str) -> str:
        selector = sel(SOURCE, f'state="{state}"')
        return per(CUSTOMER_KEY, f"saas_backup_customer_services{selector}")

    recent, active = customer_services("backed_up_recently"), customer_services("active")
    seats_ok = (
        f"({licensed}\n  - {BY_CUSTOMER} ({stale} or {never} * 0)"
        f"\n  - {BY_CUSTOMER} ({never} or {stale} * 0))"
    )
    seats_all = f"({licensed}\n  and {BY_CUSTOMER} {timed})"
    return (
        f"sum(\n  {seats_ok}\n  or ({recent}\n    unless {BY_CUSTOMER} {timed})\n)\n/\n"
        f"sum(\n  {seats_all}\n  or ({active}\n    unless {BY_CUSTOMER} {timed})\n)"
    )


def newest_runs(*matchers: str) -> str:
    """Applications and backup instances by the status of their newest backup."""
    applications = "saas_backup_application_last_backup_status"
    instances = "saas_backup_last_backup_end_timestamp_seconds"
    return (
        f"{per(APPLICATION_KEY, f'{applications}{sel(*matchers)}')}\n"
        f"  or {per(INSTANCE_KEY, f'{instances}{sel(*matchers)}')}"
    )


def top_row() -> list[tuple[Panel, int]]:
    """Are we OK: sources, data age, customers with problems, failures. No healthy-looking 0
    while a source is down or nothing reports (queries.while_up)."""
    ended = f"saas_backup_restore_job_end_timestamp_seconds{sel(SOURCE, FAILED)}"
    failed_restores = f"count({age(per(JOB_KEY, ended))} < {seconds(RESTORE_FAILED_WITHIN_HOURS)})"
    data_age = (
        f"max by (source) (min by (source, customer_id) (saas_backup_customer_data_age_seconds{S}))"
    )
    return [
        (
            stat_panel(
                "Sources",
                "Whether each source's reads work (at any exporter replica). No data: no "
                "exporter reports.",
                query(sources_up(S), legend="{{source}}", instant=True),
                mappings=UP_MAPPINGS,
                thresholds=steps(RED, (1, GREEN)),
                no_value="no data",
            ),
            5,
        ),
        (
            stat_panel(
                "Data age",
                "Age of each source's oldest customer data (the freshest replica's); orange "
                f"after {SOURCE_STALE_HOURS} hours, as SaaSBackupSourceStale.",
                query(data_age, legend="{{source}}", instant=True),
                unit="s",
                thresholds=steps(GREEN, (seconds(SOURCE_STALE_HOURS), ORANGE)),
                no_value="no data",
            ),
            5,
        ),
        (
            stat_panel(
                "Unreadable customers",
                "Customers with a read that failed in the last refresh. Unknown while a source "
                "is down or no exporter reports.",
                query(
                    while_up(f"count({per(CUSTOMER_KEY, f'saas_backup_customer_up{S}')} == 0)", S),
                    instant=True,
                ),
                thresholds=PROBLEM_STEPS,
                no_value=UNKNOWN,
            ),
            3,
        ),
        (
            stat_panel(
                "Customers needing attention",
                "Customers with a failed backup or restore, unreadable, or with seats, "
                "applications or backups stale, as the status page counts them. Unknown while "
                "a source is down or no exporter reports.",
                query(while_up(f"count({customer_levels(M)} >= {ATTENTION})", S), instant=True),
                thresholds=PROBLEM_STEPS,
                no_value=UNKNOWN,
            ),
            4,
        ),
        (
            stat_panel(
                "Failed backups",
                "Applications and backup instances whose newest backup failed. Unknown while a "
                "source is down or no exporter reports.",
                query(while_up(f"count(\n  {newest_runs(SOURCE, FAILED)}\n)", S), instant=True),
                thresholds=FAILURE_STEPS,
                no_value=UNKNOWN,
            ),
            3,
        ),
        (
            stat_panel(
                f"Failed restores, {RESTORE_FAILED_WITHIN_HOURS} h",
                "Restore and download jobs that failed in the last "
                f"{RESTORE_FAILED_WITHIN_HOURS} hours. Unknown while a source is down or no "
                "exporter reports.",
                query(while_up(failed_restores, S), instant=True),
                thresholds=FAILURE_STEPS,
                no_value=UNKNOWN,
            ),
            4,
        ),
    ]


def second_row() -> list[tuple[Panel, int]]:
    never = f"sum({seat_counts(NEVER, *M, LICENSED)})"
    running = f"count({per(INSTANCE_KEY, f'saas_backup_active_backup_start_timestamp_seconds{S}')})"
    return [
        (
            stat_panel(
                "Customers",
                "Protected customers (tenants) across the selected sources.",
                query(f"count({per(CUSTOMER_KEY, f'saas_backup_customer_info{S}')})", instant=True),
            ),
            3,
        ),
        (
            stat_panel(
                "Licensed seats",
                "Seats holding a backup license: the seats that should be backed up.",
                query(f"sum({seat_counts('saas_backup_seats', *M, LICENSED)})", instant=True),
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
                query(backed_up_share(), instant=True),
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
                query(f"sum({seat_age(*M, LICENSED)} > bool {STALE})", instant=True),
                thresholds=PROBLEM_STEPS,
            ),
            3,
        ),
        (
            stat_panel(
                "Never backed up",
                "Licensed seats the vendor reports as never backed up. No data where no vendor "
                "reports per-seat backup state.",
                query(where_reported(never, f"{SEAT_TIME}{sel(SOURCE, LICENSED)}"), instant=True),
                thresholds=PROBLEM_STEPS,
            ),
            3,
        ),
        (
            stat_panel(
                "Services not backed up",
                "Active services without a backup in the vendor's last daily window, over all "
                "customers' applications (applications paused at the vendor left out). No data "
                "where no vendor reports service counts.",
                query(f"sum(\n{not_backed_up(SOURCE)}\n)", instant=True),
                thresholds=PROBLEM_STEPS,
            ),
            4,
        ),
        (
            stat_panel(
                "Running backups",
                "Backups in progress now.",
                query(while_up(running, S), instant=True),
                no_value=UNKNOWN,
            ),
            4,
        ),
    ]


def customers_table() -> Panel:
    def per_customer(expr: str) -> str:
        return with_customer_name(expr, S, "customer_name, product, status")

    # 0 only for customers whose vendor reports run statuses at all.
    failed_runs = (
        f"(\n  count by ({CUSTOMER_KEY}) ({newest_runs(SOURCE, FAILED)})\n"
        f"  or {BY_CUSTOMER} count by ({CUSTOMER_KEY}) ({newest_runs(SOURCE)}) * 0\n)"
    )
    per_customer_sum = {
        "C": failed_runs,
        "D": f"sum by ({CUSTOMER_KEY}) ({seat_age(*M, LICENSED)} > bool {STALE})",
        "E": f"sum by ({CUSTOMER_KEY}) ({seat_counts(NEVER, *M, LICENSED)})",
        "F": f"sum by ({CUSTOMER_KEY}) (\n{not_backed_up(SOURCE)}\n)",
        "G": per(CUSTOMER_KEY, f"saas_backup_customer_backup_ratio{S}"),
        "H": f"sum by ({CUSTOMER_KEY}) ({seat_counts('saas_backup_seats', *M, LICENSED)})",
    }
    names = {
        "A": "State",
        "B": "Worst backup age",
        "C": "Failed backups",
        "D": "Stale seats",
        "E": "Never backed up",
        "F": "Services not backed up",
        "G": "Backup ratio",
        "H": "Licensed seats",
    }
    problem_column = [prop("thresholds", PROBLEM_STEPS.build()), colour_text()]
    return table_panel(
        "Customers, worst first",
        "Every customer by its worst problem, as the status page judges it: failed (an "
        "application's or backup instance's newest backup, or a restore in the last day), "
        "unreadable, stale (seats, applications or backups not backed up in time, services "
        "missed in the vendor's last daily window, running too long), unprotected (seats not "
        "licensed, services not taken into backup, not active at the vendor), ok; within one "
        "state, the oldest backup first. Worst backup age: the oldest of its licensed seats' "
        "last backups, its applications' and backup instances' last backups that did not fail, "
        "and the time since its applications were last fully protected. Failed backups: "
        "applications and backup instances whose newest backup failed. Click a customer for "
        "its problems, seats and applications.",
        query(per_customer(sort_key(M)), "A", as_table=True),
        query(per_customer(worst_age(M)), "B", as_table=True),
        *(query(per_customer(expr), ref, as_table=True) for ref, expr in per_customer_sum.items()),
        renames={
            "customer_name": "Customer",
            "source": "Source",
            "product": "Product",
            "status": "Status",
            **{f"Value #{ref}": name for ref, name in names.items()},
        },
        order=[
            "customer_name",
            *(f"Value #{ref}" for ref in names),
            "status",
            "product",
            "source",
            "customer_id",
        ],
        sort_by="State",
        columns=[
            column("Customer", prop("links", [{"title": "Customer detail", "url": CUSTOMER_LINK}])),
            column("customer_id", prop("displayName", "Customer ID")),
            column("State", prop("mappings", level_mappings()), colour_background()),
            column(
                "Worst backup age",
                prop("unit", "s"),
                prop("thresholds", AGE_STEPS.build()),
                colour_background(),
            ),
            column("Failed backups", prop("thresholds", FAILURE_STEPS.build()), colour_text()),
            column("Stale seats", *problem_column),
            column("Never backed up", *problem_column),
            column("Services not backed up", *problem_column),
            column(
                "Backup ratio",
                prop("unit", "percentunit"),
                prop("decimals", 1),
                prop("thresholds", RATIO_STEPS.build()),
                colour_text(),
            ),
            column(
                "Status", prop("mappings", text_mappings(CUSTOMER_STATUS_COLOURS)), colour_text()
            ),
        ],
    )


def fleet_overview() -> dict[str, Any]:
    grid = Grid()
    for panel, width in [*top_row(), *second_row()]:
        grid.add(panel, width, 4)
    grid.add(customers_table(), 24, 12)
    missed = f"(\n(\n{not_backed_up(SOURCE)}\n) > 0\n)"
    missed_of = f"(\n{services('active', SOURCE)}\nand on ({APPLICATION_KEY})\n{missed}\n)"
    grid.add(
        table_panel(
            "Services not backed up in the last day",
            "Customers' applications with active services that had no backup in the vendor's "
            "last daily window, as SaaSBackupServicesNotBackedUp counts them (applications "
            "paused at the vendor left out), most first. Click a customer for its detail.",
            query(with_customer_name(missed, S), "A", as_table=True),
            query(with_customer_name(missed_of, S), "B", as_table=True),
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
                    "Customer", prop("links", [{"title": "Customer detail", "url": CUSTOMER_LINK}])
                ),
                column("customer_id", prop("displayName", "Customer ID")),
                column("Not backed up", prop("unit", "none")),
                column("Active services", prop("unit", "none")),
            ],
        ),
        24,
        8,
    )
    grid.add(
        timeseries_panel(
            "Seats by license state",
            "Seats per license state: licensed seats are backed up, the others are not.",
            query(
                f"sum by (license_state) ({seat_counts('saas_backup_seats', *M)})",
                legend="{{license_state}}",
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
                f"sum by (source) ({seat_age(*M, LICENSED)} > bool {STALE})",
                "A",
                legend="{{source}}" + f" > {SEAT_STALE_HOURS} h",
            ),
            query(
                f"sum by (source) ({seat_age(*M, LICENSED)} > bool {CRITICAL})",
                "B",
                legend="{{source}}" + f" > {SEAT_CRITICAL_HOURS} h",
            ),
            min_value=0,
        ),
        12,
        8,
    )
    dashboard = (
        new_dashboard(
            FLEET_UID,
            "SaaS backup / Fleet overview",
            "Are our SaaS backups OK: sources, data age, customers with problems and failures "
            "at the top; every customer, the worst first, below.",
        )
        .with_variable(job_variable())
        .with_variable(instance_variable())
        .with_variable(source_variable(include_all=True))
    )
    return finish(dashboard, grid)

"""The customer detail: one customer's seats, applications, running backups and restores, and
the protection of its applications' services (dashboards/protection.py)."""

from __future__ import annotations

from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import BigValueTextMode

from alerts.thresholds import BACKUP_TOO_LONG_HOURS, SEAT_STALE_HOURS
from dashboards.problems import levels as problem_levels
from dashboards.problems import measured
from dashboards.protection import add_protection_panels
from dashboards.queries import (
    APPLICATION_KEY,
    CUSTOMER,
    CUSTOMER_KEY,
    DATASOURCE,
    INSTANCE_KEY,
    JOB_KEY,
    LICENSE_STATES,
    LICENSED,
    SEAT_KEY,
    SEAT_TIME,
    SOURCE,
    STALE,
    age,
    per,
    query,
    seat_age,
    seat_counts,
    seconds,
    sel,
    where_reported,
)
from dashboards.widgets import (
    AGE_STEPS,
    CUSTOMER_UID,
    GREEN,
    NEVER_MAPPINGS,
    ORANGE,
    PROBLEM_STEPS,
    RATIO_STEPS,
    RED,
    STATUS_COLOURS,
    UP_MAPPINGS,
    Grid,
    colour_background,
    column,
    finish,
    hidden,
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
)

# As SaaSBackupRunningTooLong.
RUNNING_STEPS: Final = steps(GREEN, (seconds(BACKUP_TOO_LONG_HOURS), ORANGE))


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
            f'saas_backup_customer_info{sel(SOURCE)}, "customer_label", " · ", '
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


def problems_table() -> table.Panel:
    m = (SOURCE, CUSTOMER)
    return table_panel(
        "Problems",
        "Each seat, application, backup, restore job or the customer itself with a problem, the "
        "worst first, as the status page and the fleet's state judge them: what is wrong, for "
        "how long (where it dates from something) and how many (seats never backed up or not "
        "licensed, by seat type; services missed or not taken into backup, by application).",
        query(problem_levels(m), "A", as_table=True),
        query(measured(m, "age"), "B", as_table=True),
        query(measured(m, "count"), "C", as_table=True),
        renames={
            "kind": "Kind",
            "item": "Name",
            "problem": "Problem",
            "item_id": "ID",
            "Value #A": "State",
            "Value #B": "For",
            "Value #C": "Count",
        },
        order=["Value #A", "kind", "item", "problem", "Value #B", "Value #C", "item_id"],
        sort_by="State",
        columns=[
            column("State", prop("mappings", level_mappings()), colour_background()),
            column("For", prop("unit", "s")),
            column("Count", prop("unit", "none")),
            column("source", hidden()),
            column("customer_id", hidden()),
        ],
    )


def header(grid: Grid) -> None:
    c = sel(SOURCE, CUSTOMER)
    cl = (SOURCE, CUSTOMER, LICENSED)
    panels = [
        (
            stat_panel(
                "Customer",
                "Display name, product and status as the vendor reports them.",
                query(
                    "topk(1, "
                    + per(
                        f"{CUSTOMER_KEY}, customer_name, product, status",
                        f"saas_backup_customer_info{c}",
                    )
                    + ")",
                    legend="{{customer_name}} · {{product}} · {{status}}",
                    instant=True,
                ),
                text_mode=BigValueTextMode.NAME,
            ),
            8,
        ),
        (
            stat_panel(
                "Readable",
                "Whether every read of this customer worked in the last refresh (at any "
                "exporter replica).",
                query(f"max(saas_backup_customer_up{c})", instant=True),
                mappings=UP_MAPPINGS,
                thresholds=steps(RED, (1, GREEN)),
            ),
            3,
        ),
        (
            stat_panel(
                "Licensed seats",
                "Seats holding a backup license.",
                query(f"sum({seat_counts('saas_backup_seats', *cl)})", instant=True),
            ),
            3,
        ),
        (
            stat_panel(
                "Stale seats",
                f"Licensed seats whose last backup is more than {SEAT_STALE_HOURS} hours old.",
                query(f"sum({seat_age(*cl)} > bool {STALE})", instant=True),
                thresholds=PROBLEM_STEPS,
            ),
            3,
        ),
        (
            stat_panel(
                "Never backed up",
                "Licensed seats the vendor reports as never backed up. No data where the vendor "
                "reports no per-seat backup state.",
                query(
                    where_reported(
                        f"sum({seat_counts('saas_backup_seats_never_backed_up', *cl)})",
                        f"{SEAT_TIME}{sel(*cl)}",
                    ),
                    instant=True,
                ),
                thresholds=PROBLEM_STEPS,
            ),
            3,
        ),
        (
            stat_panel(
                "Backup ratio",
                "Share of the customer's active services with a recent backup, per the vendor.",
                query(f"max(saas_backup_customer_backup_ratio{c})", instant=True),
                unit="percentunit",
                thresholds=RATIO_STEPS,
                decimals=1,
            ),
            4,
        ),
    ]
    for panel, width in panels:
        grid.add(panel, width, 4)


def applications_query(c: str) -> str:
    """Each application's (or backup instance's) newest finished backup, by its newest
    backup's status; NaN where none has finished."""
    status = f"topk by ({APPLICATION_KEY}) (1, saas_backup_application_last_backup_status{c})"
    finished = per(APPLICATION_KEY, f"saas_backup_application_last_backup_timestamp_seconds{c}")
    instance_ends = per(
        f"{INSTANCE_KEY}, status", f"saas_backup_last_backup_end_timestamp_seconds{c}"
    )
    return (
        f"max by ({APPLICATION_KEY}, status) (\n"
        f"  {finished}\n"
        f"  * on ({APPLICATION_KEY}) group_left (status)\n"
        f"  {status}\n"
        "  or\n"
        "  label_replace(\n"
        f"    {instance_ends}\n"
        f"    * on ({INSTANCE_KEY}) group_left (instance_name)\n"
        f"    topk by ({INSTANCE_KEY}) (1, saas_backup_backup_instance_info{c}),\n"
        '    "application", "$1", "instance_name", "(.*)"\n'
        "  )\n"
        "  or\n"
        f"  {status} * NaN\n"
        f"  unless on ({APPLICATION_KEY})\n"
        f"  {finished}\n"
        ") * 1000"
    )


def customer_detail() -> dict[str, Any]:
    c = sel(SOURCE, CUSTOMER)
    grid = Grid()
    header(grid)
    grid.add(problems_table(), 24, 10)
    seat_ages = age(
        per(
            f"{SEAT_KEY}, seat_type, license_state",
            f"{SEAT_TIME}{sel(SOURCE, CUSTOMER, LICENSE_STATES)}",
        )
    )
    grid.add(
        table_panel(
            "Seats, worst first",
            "Seats in the chosen license states, by the age of their last backup. Seats never "
            "backed up have no age and are counted above; with metrics.max_seat_series set, the "
            "most recently backed-up seats may be left out.",
            query(
                f"{seat_ages}\n"
                f"* on ({SEAT_KEY}) group_left (seat_name)\n"
                f"topk by ({SEAT_KEY}) (1, saas_backup_seat_info{c})",
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
    grid.add(
        table_panel(
            "Applications",
            "Each application's (or backup instance's) newest finished backup, and the status "
            "of its newest backup, which may still be running. Never: no backup has finished.",
            query(applications_query(c), as_table=True),
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
    running_for = age(per(INSTANCE_KEY, f"saas_backup_active_backup_start_timestamp_seconds{c}"))
    running = (
        f"{running_for}\n"
        f"* on ({INSTANCE_KEY}) group_left (instance_name)\n"
        f"topk by ({INSTANCE_KEY}) (1, saas_backup_backup_instance_info{c})\n"
        f"or on ({INSTANCE_KEY})\n"
        f"{running_for}"
    )
    grid.add(
        table_panel(
            "Running backups",
            "Backups in progress and how long they have run; over "
            f"{BACKUP_TOO_LONG_HOURS} hours is too long.",
            query(running, as_table=True),
            renames={"instance_name": "Backup", "instance_id": "Instance", "Value": "Running for"},
            order=["instance_name", "Value", "instance_id"],
            sort_by="Running for",
            columns=[
                column(
                    "Running for",
                    prop("unit", "s"),
                    prop("thresholds", RUNNING_STEPS.build()),
                    colour_background(),
                ),
                column("source", hidden()),
                column("customer_id", hidden()),
            ],
        ),
        12,
        10,
    )
    restore_start = per(JOB_KEY, f"saas_backup_restore_job_start_timestamp_seconds{c}")
    restore_end = per(JOB_KEY, f"saas_backup_restore_job_end_timestamp_seconds{c}")
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
    add_protection_panels(grid)
    dashboard = (
        new_dashboard(
            CUSTOMER_UID,
            "SaaS backup / Customer detail",
            "One customer's problems, and the seats, applications, running backups, restore "
            "jobs and protected services behind them.",
        )
        .with_variable(job_variable())
        .with_variable(instance_variable())
        .with_variable(source_variable(include_all=False))
        .with_variable(customer_variable())
        .with_variable(license_state_variable())
    )
    return finish(dashboard, grid)

"""The customer detail: one customer's seats, applications, running backups and restores, and
the protection of its applications' services (dashboards/protection.py)."""

from __future__ import annotations

from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import BigValueTextMode

from alerts.thresholds import BACKUP_TOO_LONG_HOURS, SEAT_STALE_HOURS
from dashboards.protection import add_protection_panels
from dashboards.queries import (
    CUSTOMER,
    DATASOURCE,
    LICENSE_STATES,
    LICENSED,
    SEAT_AGE,
    SEAT_TIME,
    SOURCE,
    STALE,
    or_zero,
    query,
    seconds,
    sel,
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
            f"Licensed seats whose last backup is more than {SEAT_STALE_HOURS} hours old.",
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
            thresholds=RATIO_STEPS,
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
    add_protection_panels(grid)
    dashboard = (
        new_dashboard(
            CUSTOMER_UID,
            "SaaS backup / Customer detail",
            "One customer's seats, applications, running backups, restore jobs, and the "
            "protection of its applications' services.",
        )
        .with_variable(source_variable(include_all=False))
        .with_variable(customer_variable())
        .with_variable(license_state_variable())
    )
    return finish(dashboard, grid)

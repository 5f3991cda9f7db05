"""The customer detail's protection panels: per application, how many services were backed up
in the vendor's last daily window, when they were last all backed up, and the storage used; per
customer, the storage and the seats billed. Numbers as the alerts count them (alerts/rules.py).
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.models import dashboard as dm

from alerts.thresholds import NOT_FULLY_PROTECTED_HOURS, SEAT_STALE_HOURS
from dashboards.queries import (
    CUSTOMER,
    CUSTOMER_KEY,
    PER_APPLICATION,
    SOURCE,
    not_backed_up,
    per,
    query,
    sel,
    services,
)
from dashboards.widgets import (
    GREEN,
    INFO_STEPS,
    ORANGE,
    PROBLEM_STEPS,
    PROTECTION_STEPS,
    Grid,
    colour_background,
    colour_text,
    column,
    hidden,
    prop,
    stat_panel,
    table_panel,
    timeseries_panel,
)

FULLY_PROTECTED: Final = "saas_backup_application_last_fully_protected_timestamp_seconds"

# saas_backup_application_enabled: whether the vendor has the application's backups switched on.
ENABLED_MAPPINGS: Final[list[dm.ValueMapping]] = [
    dm.ValueMap(
        options={
            "0": dm.ValueMappingResult(text="paused", color=ORANGE, index=0),
            "1": dm.ValueMappingResult(text="on", color=GREEN, index=1),
        }
    )
]


def add_protection_panels(grid: Grid) -> None:
    c = sel(SOURCE, CUSTOMER)
    stats = (
        stat_panel(
            "Services not backed up",
            "Active services, over all applications, without a backup in the vendor's last "
            "daily window (SaaSBackupServicesNotBackedUp). No data where the vendor reports no "
            "service counts.",
            query(f"sum(\n{not_backed_up(SOURCE, CUSTOMER)}\n)", instant=True),
            thresholds=PROBLEM_STEPS,
        ),
        stat_panel(
            "Uningested services",
            "Services the vendor has found but not yet taken into backup, over all applications.",
            query(f"sum({services('uningested', SOURCE, CUSTOMER)})", instant=True),
            thresholds=PROBLEM_STEPS,
        ),
        stat_panel(
            "Used storage",
            "Storage used by the customer's backups, as the vendor reports it.",
            query(f"sum({per(CUSTOMER_KEY, f'saas_backup_customer_used_bytes{c}')})", instant=True),
            unit="bytes",
        ),
        stat_panel(
            "Billable seats",
            "Seats the vendor bills for. No data where the vendor does not say.",
            query(f"sum({per(CUSTOMER_KEY, f'saas_backup_seats_billable{c}')})", instant=True),
            thresholds=INFO_STEPS,
        ),
    )
    for panel in stats:
        grid.add(panel, 6, 4)

    fully = f"{PER_APPLICATION} ({FULLY_PROTECTED}{c})"
    grid.add(
        table_panel(
            "Application protection",
            "Per application: active services, those with a backup in the vendor's last daily "
            "window, and those without (applications paused at the vendor not counted); "
            "services found but not yet in backup; the last time every service was backed up "
            f"and how long ago, orange after {SEAT_STALE_HOURS} hours and red after "
            f"{NOT_FULLY_PROTECTED_HOURS} (where the vendor gives a bucket such as 'over 10 days "
            "ago', its bound: the real time may be earlier); storage used; whether backups are "
            "switched on.",
            query(services("active", SOURCE, CUSTOMER), "A", as_table=True),
            query(services("backed_up", SOURCE, CUSTOMER), "B", as_table=True),
            query(not_backed_up(SOURCE, CUSTOMER), "C", as_table=True),
            query(services("uningested", SOURCE, CUSTOMER), "D", as_table=True),
            query(f"{fully} * 1000", "E", as_table=True),
            query(f"time() - {fully}", "F", as_table=True),
            query(f"{PER_APPLICATION} (saas_backup_application_used_bytes{c})", "G", as_table=True),
            query(f"{PER_APPLICATION} (saas_backup_application_enabled{c})", "H", as_table=True),
            renames={
                "application": "Application",
                "Value #A": "Active services",
                "Value #B": "Backed up, last day",
                "Value #C": "Not backed up",
                "Value #D": "Uningested",
                "Value #E": "Last fully protected",
                "Value #F": "Since fully protected",
                "Value #G": "Used",
                "Value #H": "Backups",
            },
            order=[
                "application",
                "Value #C",
                "Value #B",
                "Value #A",
                "Value #D",
                "Value #E",
                "Value #F",
                "Value #G",
                "Value #H",
            ],
            sort_by="Since fully protected",
            columns=[
                column("Not backed up", prop("thresholds", PROBLEM_STEPS.build()), colour_text()),
                column("Uningested", prop("thresholds", PROBLEM_STEPS.build()), colour_text()),
                column("Last fully protected", prop("unit", "dateTimeFromNow")),
                column(
                    "Since fully protected",
                    prop("unit", "s"),
                    prop("thresholds", PROTECTION_STEPS.build()),
                    colour_background(),
                ),
                column("Used", prop("unit", "bytes")),
                column("Backups", prop("mappings", ENABLED_MAPPINGS), colour_text()),
                column("source", hidden()),
                column("customer_id", hidden()),
            ],
        ),
        24,
        9,
    )
    grid.add(
        timeseries_panel(
            "Services backed up in the last day",
            "Per application, active services and those with a backup in the vendor's last "
            "daily window, over time: widen the time range to compare the days.",
            query(services("backed_up", SOURCE, CUSTOMER), "A", legend="{{application}} backed up"),
            query(services("active", SOURCE, CUSTOMER), "B", legend="{{application}} active"),
            stepped=True,
            min_value=0,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Used storage by application",
            "Storage used by each application's backups, as the vendor reports it.",
            query(
                f"{PER_APPLICATION} (saas_backup_application_used_bytes{c})",
                legend="{{application}}",
            ),
            unit="bytes",
            stacked=True,
        ),
        12,
        8,
    )

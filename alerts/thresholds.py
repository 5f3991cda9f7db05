"""Every number and matcher that the alert rules and the dashboards share, in one place.

In the spirit of kubernetes-mixin's `_config`: alerts/generate.py writes
alerts/saas-backup.rules.yml from these, and dashboards/generate.py colours and counts with the
same ones, so the seat that alerts as stale is the seat the dashboards paint orange.

To override one, change it here and regenerate both (`make alerts dashboards`), then commit the
module and the generated files: the drift tests fail until they agree. The promtool cases in
alerts/tests/ check each alert just before and at the default boundaries, so move their inputs
with the number. Summaries, descriptions and panel titles follow the numbers ("24 hours",
"three days"); alert and recording-rule names do not (SaaSBackupSeatsNotBackedUp24h stays the
warning tier whatever its hours), because deploy/alertmanager.yml, docs/runbooks.md and your
silences refer to them. Using the rules file without this repository? Edit its `expr` and `for`.

The backup-health numbers that the exporter's status page judges by too are kept in
exporter/thresholds.py (the installed exporter holds nothing of alerts/) and imported here, so
the rules and dashboards still read every number from this module; change those there.
"""

from __future__ import annotations

from typing import Final

from exporter.thresholds import (
    APPLICATION_STALE_HOURS,
    BACKUP_TOO_LONG_HOURS,
    INSTANCE_STALE_INTERVALS,
    NOT_FULLY_PROTECTED_HOURS,
    RESTORE_FAILED_WITHIN_HOURS,
    RESTORE_STUCK_HOURS,
    SEAT_CRITICAL_HOURS,
    SEAT_STALE_HOURS,
    SOURCE_STALE_HOURS,
)

__all__ = [
    "API_BUDGET_LOW",
    "APPLICATION_STALE_HOURS",
    "BACKUPS_FAILING_HOURS",
    "BACKUP_RATIO_GOOD",
    "BACKUP_RATIO_POOR",
    "BACKUP_TOO_LONG_HOURS",
    "CUSTOMER_GONE_WINDOW_HOURS",
    "INSTANCE_STALE_INTERVALS",
    "JOB",
    "JOB_MATCHER",
    "NOT_FULLY_PROTECTED_HOURS",
    "OVERRIDABLE",
    "PARTIAL_BACKUP_HOURS",
    "RESTORE_FAILED_WITHIN_HOURS",
    "RESTORE_PENDING_HOURS",
    "RESTORE_STUCK_HOURS",
    "RUNBOOK_URL",
    "SCRAPE_GAP_MINUTES",
    "SEAT_CRITICAL_HOURS",
    "SEAT_FIRST_BACKUP_GRACE_HOURS",
    "SEAT_STALE_HOURS",
    "SOURCE_STALE_HOURS",
    "UNINGESTED_FOR_HOURS",
]

# The Prometheus scrape job of the exporter: the exporter-down alerts select it, and the
# exporter health dashboard's job variable starts at it.
JOB: Final = "saas-backup"
JOB_MATCHER: Final = f'job="{JOB}"'

# Each alert's runbook_url is this plus "#" and the alert's name in lower case.
RUNBOOK_URL: Final = (
    "https://github.com/saas-backup-exporter/saas-backup-exporter/blob/main/docs/runbooks.md"
)

# A newly licensed seat's time for its first backup before it counts as never backed up.
SEAT_FIRST_BACKUP_GRACE_HOURS: Final = 24
# Services found but not taken into backup (uningested) for this long alert: the `for:`.
UNINGESTED_FOR_HOURS: Final = 24
# Units of a vendor's hourly API budget below which refreshes will soon be paused.
API_BUDGET_LOW: Final = 100

# A customer's backups failing (its newest backups failed, with no later success) for this long
# pages: the one customer-level problem that wakes someone.
BACKUPS_FAILING_HOURS: Final = 24
# A newest backup that only partly succeeded, for this long: a ticket.
PARTIAL_BACKUP_HOURS: Final = 24
# A restore or download job still waiting to start after this long is stuck in the queue.
RESTORE_PENDING_HOURS: Final = 2
# A customer the source listed within this many hours and lists no more is gone: the alert
# names it for this long, then resolves by itself.
CUSTOMER_GONE_WINDOW_HOURS: Final = 24
# Alerts about the exporter's data keep firing this long after their data vanishes
# (`keep_firing_for`): a restarted exporter or a few failed scrapes resolve nothing, so nothing
# pages again when the data returns. Resolutions arrive this much later.
SCRAPE_GAP_MINUTES: Final = 15

# The thresholds a customer can override (one that backs up weekly, say): the `threshold` label
# of a `saas_backup_threshold_override_hours` series that you record, and the default hours.
# docs/alerting.md shows the pattern.
OVERRIDABLE: Final = {
    "seat_stale": SEAT_STALE_HOURS,
    "seat_critical": SEAT_CRITICAL_HOURS,
    "application_stale": APPLICATION_STALE_HOURS,
    "not_fully_protected": NOT_FULLY_PROTECTED_HOURS,
}

# Share of a customer's (or the fleet's) protected seats or services with a recent backup:
# at or above GOOD is green, from POOR up orange, below POOR red. Dashboards only.
BACKUP_RATIO_GOOD: Final = 0.99
BACKUP_RATIO_POOR: Final = 0.9

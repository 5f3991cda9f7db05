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
"""

from __future__ import annotations

from typing import Final

# The Prometheus scrape job of the exporter: the exporter-down alerts select it, and the
# exporter health dashboard's job variable starts at it.
JOB: Final = "saas-backup"
JOB_MATCHER: Final = f'job="{JOB}"'

# Each alert's runbook_url is this plus "#" and the alert's name in lower case.
RUNBOOK_URL: Final = (
    "https://github.com/saas-backup-exporter/saas-backup-exporter/blob/main/docs/runbooks.md"
)

# A licensed seat's last backup older than this is stale: a warning, and orange on dashboards.
SEAT_STALE_HOURS: Final = 24
# ... and older than this, critical, and red on dashboards.
SEAT_CRITICAL_HOURS: Final = 72
# A newly licensed seat's time for its first backup before it counts as never backed up.
SEAT_FIRST_BACKUP_GRACE_HOURS: Final = 24
# An application (mailbox, drive, site collection) without a finished backup for this long.
APPLICATION_STALE_HOURS: Final = 48
# An application whose services were last all backed up longer ago than this is not fully
# protected: critical, as the seats' 72 hours, and red on dashboards (orange from
# SEAT_STALE_HOURS). Where the vendor gives only a bucket ("over 10 days ago"), its bound.
NOT_FULLY_PROTECTED_HOURS: Final = 72
# Services found but not taken into backup (uningested) for this long alert: the `for:`.
UNINGESTED_FOR_HOURS: Final = 24
# A backup instance is stale when its last success is older than this many of its scheduled
# intervals (a daily instance after two days, a weekly one after two weeks); an instance whose
# schedule is off has no interval and is never stale.
INSTANCE_STALE_INTERVALS: Final = 2
# A backup still running after this long is too long: a warning, and orange on dashboards.
BACKUP_TOO_LONG_HOURS: Final = 12
# A restore or download job that failed within this window alerts, and the fleet counts it.
RESTORE_FAILED_WITHIN_HOURS: Final = 24
# A restore or download job still running after this long is stuck.
RESTORE_STUCK_HOURS: Final = 6
# A source without a successful refresh for this long is stale.
SOURCE_STALE_HOURS: Final = 3
# Units of a vendor's hourly API budget below which refreshes will soon be paused.
API_BUDGET_LOW: Final = 100

# Share of a customer's (or the fleet's) protected seats or services with a recent backup:
# at or above GOOD is green, from POOR up orange, below POOR red. Dashboards only.
BACKUP_RATIO_GOOD: Final = 0.99
BACKUP_RATIO_POOR: Final = 0.9

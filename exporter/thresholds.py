"""The backup-health numbers that the status page judges by, shared with the alert rules and the
dashboards: alerts/thresholds.py imports them from here, so the seat the page calls stale is the
seat that alerts as stale. They live in the exporter because the installed package (and its
container image) holds nothing else of this repository.

To change one, change it here and regenerate the rules and dashboards (`make alerts
dashboards`), as alerts/thresholds.py describes.
"""

from __future__ import annotations

from typing import Final

# A licensed seat's last backup older than this is stale: a warning, and orange on dashboards.
SEAT_STALE_HOURS: Final = 24
# ... and older than this, critical, and red on dashboards.
SEAT_CRITICAL_HOURS: Final = 72
# An application (mailbox, drive, site collection) without a finished backup for this long.
APPLICATION_STALE_HOURS: Final = 48
# An application whose services were last all backed up longer ago than this is not fully
# protected: critical, as the seats' 72 hours, and red on dashboards (orange from
# SEAT_STALE_HOURS). Where the vendor gives only a bucket ("over 10 days ago"), its bound.
NOT_FULLY_PROTECTED_HOURS: Final = 72
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

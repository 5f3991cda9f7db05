"""The rules, as data built from thresholds.py; alerts/generate.py writes them out.

docs/alerting.md says what pages, what is a ticket and what is context, and why each alert is
shaped as it is. Alert and record names are fixed, whatever the thresholds: the Alertmanager
example, the runbooks and users' silences refer to them.
"""

from __future__ import annotations

from typing import Final

from alerts.backup_rules import BACKUP_ALERTS, RESTORE_ALERTS
from alerts.customer_rules import (
    CUSTOMER_ALERTS,
    EXPORTER_ALERTS,
    RECORDS,
    SEAT_ALERTS,
    SERVICE_ALERTS,
)
from alerts.exprs import spelled
from alerts.model import Group

__all__ = ["GROUPS", "spelled"]

GROUPS: Final = (
    Group(
        "saas-backup",
        (
            *RECORDS,
            *EXPORTER_ALERTS,
            *CUSTOMER_ALERTS,
            *SEAT_ALERTS,
            *SERVICE_ALERTS,
            *BACKUP_ALERTS,
            *RESTORE_ALERTS,
        ),
        comment=(
            "One group: recording rules are evaluated before the alerts that read them, in the "
            "same cycle, so every `for` starts counting when the data first shows the problem."
        ),
    ),
)

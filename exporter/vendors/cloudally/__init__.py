"""CloudAlly: backup tasks and restore/download jobs, over a partner login with refresh
tokens."""

from __future__ import annotations

from typing import Any

from exporter.simulator.world import Credentials
from exporter.vendor import Vendor
from exporter.vendors.cloudally.settings import CloudAllySettings
from exporter.vendors.cloudally.simulator import DEMO_EMAIL, DEMO_PASSWORD, CloudAllySim
from exporter.vendors.cloudally.source import CloudAllySource


def _demo(keys: Credentials) -> dict[str, Any]:
    # The live API's login (client headers plus a partner user), which every shape accepts.
    return {
        "client_id": keys.client_id,
        "client_secret": keys.client_secret,
        "auth_style": "headers",
        "email": DEMO_EMAIL,
        "password": DEMO_PASSWORD,
    }


VENDOR = Vendor(
    name="cloudally",
    settings=CloudAllySettings,
    source=CloudAllySource,
    endpoints={
        "backup_tasks": 900.0,
        # Also lists new restore jobs: read more often than the backups it holds change.
        "partner_tasks": 300.0,
        "partner_status": 900.0,
        "restore_status": 120.0,
    },
    simulator=CloudAllySim,
    demo=_demo,
    # The live API; a restore's status is read only while it runs, so it is left out.
    calls={"partner_tasks": ("crawl", 1), "partner_status": ("crawl", 1)},
)

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
        "backup_tasks": None,
        "partner_tasks": None,
        "partner_status": None,
        "restore_status": None,
    },
    simulator=CloudAllySim,
    demo=_demo,
)

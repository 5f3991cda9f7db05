"""Legacy Backupify v1: backup instances, their running and newest finished backups, over
OAuth2 client credentials."""

from __future__ import annotations

from typing import Any

from exporter.simulator.world import Credentials
from exporter.vendor import Vendor
from exporter.vendors.backupify.settings import BackupifySettings
from exporter.vendors.backupify.simulator import BackupifySim
from exporter.vendors.backupify.source import BackupifySource


def _demo(keys: Credentials) -> dict[str, Any]:
    return {
        "client_id": keys.client_id,
        "client_secret": keys.client_secret,
    }


VENDOR = Vendor(
    name="backupify",
    settings=BackupifySettings,
    source=BackupifySource,
    endpoints={"definitions": None, "instances": None, "active_backup": None, "backups": None},
    simulator=BackupifySim,
    demo=_demo,
)

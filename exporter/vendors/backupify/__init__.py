"""Legacy Backupify v1: customers, backup instances, their running and newest finished backups and
their exports, over OAuth2 client credentials.

Endpoint names (``cache.endpoints`` keys and the ``endpoint`` label of the request counter):
``customers`` (also tells whether the server has ``/v1/customers`` at all),
``customer_instances``, ``definition`` (one definition's name; an hour by default, names change
rarely), ``active_backup``, ``backups``, ``exports``; and, read only from servers without
``/v1/customers`` (the spec shape), ``definitions`` (the all-vendor listing) and ``instances``
(a definition's instances). Those two keep their names so that existing configs stay valid.
"""

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
    endpoints={
        "customers": None,
        "customer_instances": None,
        "definition": 3600.0,
        "definitions": None,
        "instances": None,
        "active_backup": None,
        "backups": None,
        "exports": None,
    },
    simulator=BackupifySim,
    demo=_demo,
)

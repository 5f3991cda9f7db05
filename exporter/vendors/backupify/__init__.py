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
        "customers": 900.0,
        # Instances come and go with products, rarely.
        "customer_instances": 3600.0,
        "definition": 3600.0,
        "definitions": 900.0,
        "instances": 900.0,
        "active_backup": 900.0,
        # Daily backups: half an hour is fresh enough to alert on a day's miss.
        "backups": 1800.0,
        # Exports are restores someone waits for.
        "exports": 600.0,
    },
    simulator=BackupifySim,
    demo=_demo,
    # The customer path; an instance per customer; a long list's first and last pages.
    calls={
        "customers": ("crawl", 1),
        "customer_instances": ("customer", 1),
        "active_backup": ("customer", 1),
        "backups": ("customer", 2),
        "exports": ("customer", 2),
    },
)

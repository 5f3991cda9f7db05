"""Datto SaaS Protection (Backupify): customers, seats and per-application backup history over
HTTP Basic auth (public key : private key)."""

from __future__ import annotations

from typing import Any

from exporter.simulator.world import Credentials
from exporter.vendor import Vendor
from exporter.vendors.datto.settings import DattoSettings
from exporter.vendors.datto.simulator import DattoSim
from exporter.vendors.datto.source import DattoSource


def _demo(keys: Credentials) -> dict[str, Any]:
    return {
        "public_key": keys.public_key,
        "private_key": keys.private_key,
    }


VENDOR = Vendor(
    name="datto",
    settings=DattoSettings,
    source=DattoSource,
    endpoints={"domains": 900.0, "seats": 3600.0, "applications": 3600.0},
    simulator=DattoSim,
    demo=_demo,
    calls={"domains": ("crawl", 1), "seats": ("customer", 1), "applications": ("customer", 1)},
)

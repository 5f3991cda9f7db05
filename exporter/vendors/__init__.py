"""The vendor registry: the only generic code that names the vendors. One line per vendor.

Config types, endpoint TTLs, the demo and the simulator's routes are all read from here, so a
new vendor is one package under ``exporter/vendors/`` plus one ``register`` line below.
"""

from __future__ import annotations

from typing import Any

from exporter.vendor import Vendor
from exporter.vendors import backupify, cloudally, datto

_REGISTRY: dict[str, Vendor[Any]] = {}


def register(vendor: Vendor[Any]) -> None:
    if vendor.name in _REGISTRY:
        raise ValueError(f"vendor {vendor.name!r} is registered already")
    _REGISTRY[vendor.name] = vendor


def unregister(name: str) -> None:
    del _REGISTRY[name]


def get(name: str) -> Vendor[Any]:
    return _REGISTRY[name]


def all() -> tuple[Vendor[Any], ...]:
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


register(datto.VENDOR)
register(backupify.VENDOR)
register(cloudally.VENDOR)

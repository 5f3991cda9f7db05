"""Wiring: config -> sources -> refresh runners -> the HTTP app. Builds; never calls a vendor."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from starlette.applications import Starlette

from exporter import vendors
from exporter.config import Config
from exporter.refresh import Scheduler, SourceRunner
from exporter.server import create_app


def build_scheduler(
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Scheduler:
    runners = []
    for settings in config.sources:
        vendor = vendors.get(settings.vendor)
        runners.append(
            SourceRunner(
                vendor.build_source(settings, transport=transport, clock=clock),
                config.cache,
                settings.refresh_timeout_seconds,
                clock,
                vendor.endpoints,
            )
        )
    return Scheduler(runners)


def build_app(config: Config, *, warm_up: bool | None = None) -> Starlette:
    return create_app(build_scheduler(config), config, warm_up=warm_up)

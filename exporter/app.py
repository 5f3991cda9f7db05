"""Wiring: config -> sources -> refresh runners -> the HTTP app. Builds; never calls a vendor."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from starlette.applications import Starlette

from exporter.cache import Collector, SourceRunner
from exporter.config import Config
from exporter.server import create_app
from exporter.sources import build_source


def build_collector(
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Collector:
    runners = [
        SourceRunner(
            build_source(source, transport=transport, clock=clock),
            config.cache,
            source.refresh_timeout_seconds,
            clock,
        )
        for source in config.sources
    ]
    return Collector(runners)


def build_app(config: Config, *, warm_up: bool | None = None) -> Starlette:
    return create_app(build_collector(config), config, warm_up=warm_up)

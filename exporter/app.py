"""Wiring: config -> sources -> refresh runners -> the HTTP app. Builds; never calls a vendor."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import httpx
from starlette.applications import Starlette

from exporter import vendors
from exporter.config import Config
from exporter.persist import Persistence
from exporter.plan import plan_source
from exporter.refresh import Scheduler, SourceRunner
from exporter.server import create_app
from exporter.state import StateFile
from exporter.webauth import WebGuard
from exporter.webconfig import LiveWebConfig


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
            (
                SourceRunner(
                    vendor.build_source(settings, transport=transport, clock=clock),
                    config.cache,
                    settings.refresh_timeout_seconds,
                    clock,
                    vendor.endpoints,
                    workers=settings.max_concurrency,
                    stall_seconds=settings.stall_seconds,
                    plan=functools.partial(plan_source, settings, config.cache),
                ),
                settings,
            )
        )
    persistence = None
    if config.cache.state_file is not None:
        persistence = Persistence(StateFile(config.cache.state_file), runners)
        persistence.restore()
    return Scheduler([runner for runner, _ in runners], persistence)


def build_app(
    config: Config, *, warm_up: bool | None = None, web: LiveWebConfig | None = None
) -> Starlette:
    app = create_app(build_scheduler(config), config, warm_up=warm_up)
    if web is not None:
        app.add_middleware(WebGuard, live=web)
    return app

"""Wiring: config -> sources -> refresh runners -> the HTTP app. Builds; never calls a vendor."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from starlette.applications import Starlette

from exporter import vendors
from exporter.config import CacheConfig, Config
from exporter.filters import CustomerMatcher
from exporter.persist import Persistence
from exporter.plan import plan_source
from exporter.refresh import Scheduler, SourceRunner
from exporter.reload import Live, Persisted, Reloader
from exporter.server import create_app
from exporter.settings import SourceBase
from exporter.state import StateFile
from exporter.webauth import WebGuard
from exporter.webconfig import LiveWebConfig


def build_runner(
    settings: SourceBase,
    cache: CacheConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> SourceRunner:
    vendor = vendors.get(settings.vendor)
    return SourceRunner(
        vendor.build_source(settings, transport=transport, clock=clock),
        cache,
        settings.refresh_timeout_seconds,
        clock,
        vendor.endpoints,
        workers=settings.max_concurrency,
        stall_seconds=settings.stall_seconds,
        plan=functools.partial(plan_source, settings, cache),
        keep=CustomerMatcher(settings.customers),
    )


def build_live(
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Live:
    """The sources' runners, restored from the state file, and what serves them."""
    runners = [
        (build_runner(settings, config.cache, transport=transport, clock=clock), settings)
        for settings in config.sources
    ]
    persisted = Persisted()
    if config.cache.state_file is not None:
        persisted.current = Persistence(StateFile(config.cache.state_file), runners)
        persisted.current.restore()
    scheduler = Scheduler([runner for runner, _ in runners], persisted)
    return Live(config, scheduler, persisted, clock)


def build_scheduler(
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Scheduler:
    return build_live(config, transport=transport, clock=clock).scheduler


def build_app(
    config: Config,
    *,
    warm_up: bool | None = None,
    web: LiveWebConfig | None = None,
    config_file: Path | None = None,
    lifecycle: bool = False,
) -> Starlette:
    """``config_file``: what a reload (SIGHUP, ``POST /-/reload`` with ``lifecycle``) re-reads."""
    live = build_live(config)
    reloader = None
    if config_file is not None:
        reloader = Reloader(live, config_file, build_runner, web=web)
    app = create_app(live, warm_up=warm_up, reloader=reloader, lifecycle=lifecycle)
    if web is not None:
        app.add_middleware(WebGuard, live=web)
    return app

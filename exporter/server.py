"""HTTP: /metrics, /-/healthy, /-/ready and the status page. Serves bytes; never calls a vendor
itself and never waits past the scrape deadline."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from exporter import statuspage
from exporter.config import Config
from exporter.exposition import Exposition, wants_gzip, wants_openmetrics
from exporter.limits import PROBES, ConcurrencyLimit
from exporter.refresh import Scheduler

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_HEADER: Final = "X-Prometheus-Scrape-Timeout-Seconds"


def create_app(
    scheduler: Scheduler,
    config: Config,
    *,
    warm_up: bool | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the ASGI app. Nothing here calls a vendor; a warm-up refresh starts with the server."""
    exposition = Exposition(config.metrics)
    warm = config.cache.warm_up if warm_up is None else warm_up

    async def metrics(request: Request) -> Response:
        deadline = config.scrape.deadline(request.headers.get(SCRAPE_TIMEOUT_HEADER))
        states = await scheduler.states(deadline)
        body = exposition.body(
            states,
            clock(),
            openmetrics=wants_openmetrics(request.headers.get("accept")),
            gzip=wants_gzip(request.headers.get("accept-encoding")),
        )
        headers = {"Vary": "Accept, Accept-Encoding"}
        if body.gzipped:
            headers["Content-Encoding"] = "gzip"
        return Response(body.content, media_type=body.content_type, headers=headers)

    async def healthy(_: Request) -> Response:
        return PlainTextResponse("Healthy\n")

    async def ready(_: Request) -> Response:
        waiting = scheduler.waiting()
        if waiting:
            return PlainTextResponse(f"Not ready: waiting for {', '.join(waiting)}\n", 503)
        return PlainTextResponse("Ready\n")

    async def index(request: Request) -> Response:
        refresh = request.query_params.get("refresh") != "off"
        states = scheduler.snapshot_states()
        # A large fleet's page takes a while: off the event loop, so scrapes go on meanwhile.
        page = await run_in_threadpool(statuspage.render, states, clock(), refresh=refresh)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        scheduler.start(warm_up=warm)
        try:
            yield
        finally:
            await scheduler.stop()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/metrics", metrics),
            Route("/-/healthy", healthy),
            Route("/-/ready", ready),
        ],
        middleware=[Middleware(ConcurrencyLimit, limit=config.web.max_concurrency, exempt=PROBES)],
        lifespan=lifespan,
    )
    app.state.exposition = exposition
    return app


def parse_listen_address(address: str) -> tuple[str, int]:
    """``:10049``, ``0.0.0.0:10049``, ``[::]:10049`` -> host, port."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--web.listen-address {address!r}: expected HOST:PORT, e.g. :10049")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)

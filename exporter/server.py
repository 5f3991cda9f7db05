"""HTTP: /metrics, /-/healthy, /-/ready and the landing page. Serves bytes; never calls a vendor
itself and never waits past the scrape deadline."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from exporter import __version__
from exporter.config import Config
from exporter.exposition import Exposition, wants_gzip, wants_openmetrics
from exporter.limits import PROBES, ConcurrencyLimit
from exporter.refresh import Scheduler, SourceState

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_HEADER: Final = "X-Prometheus-Scrape-Timeout-Seconds"


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _state_word(state: SourceState) -> str:
    if not state.refreshed:
        return "refreshing" if state.refreshing else "pending"
    return "up" if state.up else "down"


def landing_page(states: tuple[SourceState, ...]) -> str:
    rows = []
    for s in states:
        customers = len(s.snapshot.customers) if s.snapshot else 0
        cells = (
            s.name,
            s.vendor,
            _state_word(s),
            _when(s.last_success),
            _when(s.last_attempt),
            str(customers),
            s.error or "",
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>SaaS Backup Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}</style>
</head><body>
<h1>SaaS Backup Exporter</h1>
<p>Version {html.escape(__version__)}.
<a href="metrics">Metrics</a> · <a href="-/healthy">Health</a> · <a href="-/ready">Readiness</a></p>
<table><thead><tr><th>Source</th><th>Vendor</th><th>State</th><th>Last success</th>
<th>Last attempt</th><th>Customers</th><th>Last error</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""


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
        waiting = [s.name for s in scheduler.snapshot_states() if not s.refreshed]
        if waiting:
            return PlainTextResponse(f"Not ready: waiting for {', '.join(waiting)}\n", 503)
        return PlainTextResponse("Ready\n")

    async def index(_: Request) -> Response:
        return HTMLResponse(landing_page(scheduler.snapshot_states()))

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

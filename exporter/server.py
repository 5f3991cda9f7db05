"""HTTP: /metrics, /probe, /-/healthy, /-/ready, /-/reload and the status page. Serves bytes;
never calls a vendor itself and never waits past the scrape deadline.

``/probe?target=<source>`` is the multi-target pattern of the blackbox and json exporters: one
source's series, exactly as /metrics has them, with the same deadline, cache and single flight,
plus the exporter's own families (build info, config reload). Prometheus's ``up`` for such a
scrape says the exporter answered; ``saas_backup_up{source}`` says whether the vendor did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from exporter import statuspage
from exporter.exposition import Exposition, wants_gzip, wants_openmetrics
from exporter.limits import PROBES, ConcurrencyLimit
from exporter.refresh import SourceState, settle
from exporter.reload import Live, Reloader

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_HEADER: Final = "X-Prometheus-Scrape-Timeout-Seconds"


def create_app(
    live: Live,
    *,
    warm_up: bool | None = None,
    clock: Callable[[], float] = time.time,
    reloader: Reloader | None = None,
    lifecycle: bool = False,
) -> Starlette:
    """Build the ASGI app. Nothing here calls a vendor; a warm-up refresh starts with the server.
    ``lifecycle``: ``POST /-/reload`` reloads (``--web.enable-lifecycle``)."""
    warm = live.config.cache.warm_up if warm_up is None else warm_up

    def respond(
        request: Request, exposition: Exposition, states: Sequence[SourceState]
    ) -> Response:
        openmetrics = wants_openmetrics(request.headers.get("accept"))
        body = exposition.body(
            states,
            clock(),
            openmetrics=openmetrics,
            gzip=wants_gzip(request.headers.get("accept-encoding")),
            extra=live.status.lines(openmetrics=openmetrics),
        )
        headers = {"Vary": "Accept, Accept-Encoding"}
        if body.gzipped:
            headers["Content-Encoding"] = "gzip"
        return Response(body.content, media_type=body.content_type, headers=headers)

    def deadline(request: Request) -> float:
        return live.config.scrape.deadline(request.headers.get(SCRAPE_TIMEOUT_HEADER))

    async def metrics(request: Request) -> Response:
        states = await live.scheduler.states(deadline(request))
        # Nothing awaits from the states to the body: a reload cannot come between them.
        return respond(request, live.exposition, states)

    async def probe(request: Request) -> Response:
        target = request.query_params.get("target")
        if not target:
            return PlainTextResponse("Target parameter is missing\n", 400)
        runner = live.runner(target)
        if runner is None:
            return _unknown(target, live)
        await settle((runner,), deadline(request))
        # A reload may have replaced or removed the source meanwhile.
        runner = live.runner(target)
        if runner is None:
            return _unknown(target, live)
        return respond(request, live.probe_exposition(runner), (runner.state(),))

    async def healthy(_: Request) -> Response:
        return PlainTextResponse("Healthy\n")

    async def ready(_: Request) -> Response:
        waiting = live.scheduler.waiting()
        if not waiting:
            live.ready_latched = True
        elif not live.ready_latched:
            return PlainTextResponse(f"Not ready: waiting for {', '.join(waiting)}\n", 503)
        return PlainTextResponse("Ready\n")

    async def reload(request: Request) -> Response:
        # Prometheus's answers, word for word.
        if request.method == "GET":
            return PlainTextResponse("Only POST or PUT requests allowed\n", 405)
        if not lifecycle or reloader is None:
            return PlainTextResponse("Lifecycle API is not enabled.\n", 403)
        problems = await reloader.reload()
        if problems:
            return PlainTextResponse(f"failed to reload config: {'; '.join(problems)}\n", 500)
        return PlainTextResponse("Reloaded\n")

    async def index(request: Request) -> Response:
        refresh = request.query_params.get("refresh") != "off"
        states = live.scheduler.snapshot_states()
        # A large fleet's page takes a while: off the event loop, so scrapes go on meanwhile.
        page = await run_in_threadpool(statuspage.render, states, clock(), refresh=refresh)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        live.scheduler.start(warm_up=warm)
        try:
            yield
        finally:
            if reloader is not None:
                await reloader.close()
            await live.scheduler.stop()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/metrics", metrics),
            Route("/probe", probe),
            Route("/-/healthy", healthy),
            Route("/-/ready", ready),
            Route("/-/reload", reload, methods=["GET", "POST", "PUT"]),
        ],
        middleware=[
            Middleware(ConcurrencyLimit, limit=live.config.web.max_concurrency, exempt=PROBES)
        ],
        lifespan=lifespan,
    )
    app.state.exposition = live.exposition
    app.state.live = live
    app.state.reloader = reloader
    return app


def _unknown(target: str, live: Live) -> Response:
    names = ", ".join(r.source.name for r in live.scheduler.runners)
    shown = target if len(target) <= 64 else target[:64] + "..."
    return PlainTextResponse(
        f"Unknown target {shown!r}: the target is the name of a configured source ({names})\n",
        400,
    )


def parse_listen_address(address: str) -> tuple[str, int]:
    """``:10049``, ``0.0.0.0:10049``, ``[::]:10049`` -> host, port."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--web.listen-address {address!r}: expected HOST:PORT, e.g. :10049")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)

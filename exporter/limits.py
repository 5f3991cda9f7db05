"""What one client can hold of the server: connections, the time to send a request's header,
and requests in flight.

uvicorn's own ``limit_concurrency`` counts open connections as well as requests, so a few idle
sockets answer every request with 503, and nothing bounds how long a connection may take to
send its first request. Here requests in flight are capped by an ASGI middleware that lets the
health probes through; connections by a subclass of uvicorn's h11 protocol that closes one
which has not sent a complete request header in time and, at the connection cap, makes room
by closing the oldest idle connection instead of refusing the new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from typing import Any, ClassVar, Final

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from exporter.config import WebConfig

logger = logging.getLogger(__name__)

# Probes must answer while the exporter is busy, and neither of them calls a vendor.
PROBES: Final = frozenset({"/-/healthy", "/-/ready"})
# An idle kept-alive connection is closed after this (uvicorn takes whole seconds).
KEEP_ALIVE_SECONDS: Final = 15
_LOG_EVERY_SECONDS: Final = 60.0


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in flight, 503 beyond; the paths in
    ``exempt`` are never counted nor refused."""

    def __init__(self, app: ASGIApp, limit: int, exempt: Collection[str] = PROBES) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self.active = 0
        self.rejected = 0
        self._next_log = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            self._reject()
            response = PlainTextResponse(
                "Too many requests in flight\n", 503, headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    def _reject(self) -> None:
        self.rejected += 1
        now = time.monotonic()
        # Once a minute at most: a flood of requests must not become a flood of log lines.
        if now >= self._next_log:
            self._next_log = now + _LOG_EVERY_SECONDS
            logger.warning(
                "msg=%s limit=%d rejected_total=%d",
                "requests over web.max_concurrency answered 503",
                self.limit,
                self.rejected,
            )


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header-read timeout and an evicting connection cap.

    The header timer starts when the connection is made, or in keep-alive at the first byte of
    the next request (until then uvicorn's keep-alive timeout applies), and further bytes do
    not restart it: a client trickling a header a byte at a time is closed all the same.
    """

    header_read_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 512

    _header_timer: asyncio.TimerHandle | None = None
    _opened = 0.0
    _requests = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._start_header_timer()
        self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle():
            self._start_header_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:
            # A new request cycle: its header is complete.
            self._requests += 1
            self._stop_header_timer()

    def _idle(self) -> bool:
        """No request is being served: waiting for one, or between two."""
        return self.cycle is None or self.cycle.response_complete

    def _start_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.header_read_timeout, self._header_timed_out
            )

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._idle() and not self.transport.is_closing():
            logger.debug(
                "msg=%s client=%s timeout_seconds=%s",
                "closing a connection that sent no complete request header in time",
                _peer(self.client),
                self.header_read_timeout,
            )
            self.transport.close()

    def _make_room(self) -> None:
        if len(self.connections) <= self.max_connections:
            return
        open_ = [
            c
            for c in self.connections
            if isinstance(c, GuardedH11Protocol) and not c.transport.is_closing()
        ]
        if len(open_) <= self.max_connections:
            return
        # Those that never completed a request first, then the longest open.
        idle = [c for c in open_ if c is not self and c._idle()]
        victim = min(idle, key=lambda c: (c._requests > 0, c._opened), default=self)
        logger.debug(
            "msg=%s client=%s max_connections=%d",
            "closing an idle connection to make room" if idle else "refusing a connection",
            _peer(victim.client),
            self.max_connections,
        )
        victim.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"


def protocol_class(header_read_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """A ``GuardedH11Protocol`` with these limits, for uvicorn's ``http`` setting."""

    class Configured(GuardedH11Protocol):
        pass

    Configured.header_read_timeout = header_read_timeout
    Configured.max_connections = max_connections
    return Configured


def server_options(web: WebConfig) -> dict[str, Any]:
    """uvicorn settings enforcing ``web``: requests are limited by ``ConcurrencyLimit`` in the
    app, not by uvicorn's ``limit_concurrency``, which counts idle connections too."""
    return {
        "http": protocol_class(web.header_read_timeout_seconds, web.max_connections),
        "limit_concurrency": None,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # Nothing here speaks WebSocket; an upgrade would bypass the limits above.
        "ws": "none",
    }

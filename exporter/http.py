"""The HTTP client every source talks through: timeouts, retries, rate limits, API counters.

Each call is bounded: a deadline covers its connect, headers and whole body, and its body may
hold at most the source's ``max_body_bytes`` (``exporter.wire``), JSON at most 64 levels deep.

Retries use stamina (exponential backoff with jitter). A 429 blocks the whole source until its
``Retry-After`` has passed (at most ``max_retry_after_seconds``), so concurrent callers do not
spend the vendor's budget either. Each attempt waits for that pause, then for the source's
pacer (``exporter.budget``), then for one of the source's concurrency slots, which it holds
only while the request is on the wire: a pause or a retry's backoff holds no slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
import stamina
from httpx import USE_CLIENT_DEFAULT

from exporter import __version__
from exporter.budget import Pacer, Report, Ticket, read_report

# RateGate is imported from here by callers that predate exporter.gate.
from exporter.gate import RateGate as RateGate  # noqa: PLC0414
from exporter.gate import parse_retry_after
from exporter.settings import MIB, BudgetConfig, RetryConfig, SourceBase
from exporter.wire import BODY_LIMIT, BodyTooLarge, NotJson, cap_response, decode_json, read_body

logger = logging.getLogger(__name__)

USER_AGENT = f"saas-backup-exporter/{__version__}"

# Set while a call is on the wire: a call made from inside it (the auth flow fetching a token)
# must not wait for a slot or the pacer, which its caller holds.
_SENDING: ContextVar[bool] = ContextVar("sending", default=False)


class VendorError(Exception):
    """A failed vendor call. The message is safe to log and show: it never holds a secret.
    ``status`` is the HTTP status code, where the vendor answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(VendorError):
    """Worth retrying: 5xx, timeouts, connection failures."""


class RateLimited(VendorError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


@dataclass
class ApiStats:
    """Per-source counters and the vendor's last reported rate budget."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    limit_cost: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    parse_errors: int = 0
    limit_remaining: float | None = None
    limit_resets: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    body: Any
    headers: httpx.Headers
    url: str
    links: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, str | int] | None
    json: Any
    data: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    authenticated: bool
    allow_empty: bool


def list_items(body: Any, key: str) -> list[Any]:
    """A bare array, or the first list under ``key``, ``data``, ``items`` or ``results``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for candidate in (key, "data", "items", "results"):
            value = body.get(candidate)
            if isinstance(value, list):
                return value
    raise VendorError(f"{key}: unexpected response shape")


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # monotonic
    refresh: str | None = None


class TokenCache:
    """One access token per source, fetched once however many callers find it expired, and
    renewed ``margin_seconds`` before it expires, or at half its lifetime if that is sooner."""

    def __init__(
        self, fetch: Callable[[Token | None], Awaitable[Token]], margin_seconds: float = 60.0
    ) -> None:
        self._fetch = fetch
        self._margin = margin_seconds
        self._token: Token | None = None
        self._renew_at = 0.0  # monotonic
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._renew_at

    async def get(self) -> str:
        if self._valid():
            assert self._token is not None
            return self._token.value
        async with self._lock:
            if not self._valid():
                self.fetches += 1
                token = await self._fetch(self._token)
                lifetime = max(token.expires_at - time.monotonic(), 0.0)
                # A token that lives less than the margin would look expired on arrival and be
                # fetched again on every call. Half its lifetime still leaves the other half for
                # the calls in flight, and costs at most two fetches per lifetime.
                self._renew_at = token.expires_at - min(self._margin, lifetime / 2)
                self._token = token
            assert self._token is not None
            return self._token.value

    def invalidate(self, value: str) -> None:
        # Only the token that was refused: another caller may have replaced it already.
        if self._token is not None and self._token.value == value:
            self._token = Token("", 0.0, self._token.refresh)
            self._renew_at = 0.0


class BearerAuth(httpx.Auth):
    """Bearer token; on a 401, one fresh token and one retry, then the 401 stands."""

    def __init__(self, tokens: TokenCache) -> None:
        self._tokens = tokens

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._tokens.get()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            logger.info("msg=%s path=%s", "token refused, fetching a new one", request.url.path)
            self._tokens.invalidate(token)
            request.headers["Authorization"] = f"Bearer {await self._tokens.get()}"
            yield request


class VendorClient:
    def __init__(
        self,
        *,
        base_url: str,
        retry: RetryConfig,
        timeout: float,
        connect_timeout: float,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        stats: ApiStats | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 4,
        budget: BudgetConfig | None = None,
        name: str = "",
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = 64 * MIB,
        body_limits: Mapping[str, int] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.stats = stats if stats is not None else ApiStats()
        self._retry = retry
        self._max_body = max_body_bytes
        self._body_limits = dict(body_limits or {})
        self._deadline = connect_timeout + timeout if deadline is None else deadline
        self._clock = clock
        self._gate = RateGate(retry.max_retry_after_seconds)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._sending = 0
        self.pacer = Pacer(budget or BudgetConfig(), name=name, clock=clock)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
            transport=transport,
            event_hooks={"response": [cap_response]},
        )

    @classmethod
    def for_source(
        cls,
        config: SourceBase,
        *,
        auth: httpx.Auth | None,
        stats: ApiStats,
        transport: httpx.AsyncBaseTransport | None,
        headers: Mapping[str, str] | None = None,
    ) -> VendorClient:
        return cls(
            base_url=str(config.base_url),
            retry=config.retry,
            timeout=config.timeout_seconds,
            connect_timeout=config.connect_timeout_seconds,
            auth=auth,
            headers=headers,
            stats=stats,
            transport=transport,
            max_concurrency=config.max_concurrency,
            budget=config.budget,
            name=config.name,
            max_body_bytes=config.max_body_bytes,
            body_limits=config.max_body_bytes_by_endpoint,
            deadline=config.deadline_seconds,
        )

    @property
    def sending(self) -> int:
        """Calls on the wire now, each holding a concurrency slot."""
        return self._sending

    @property
    def gate(self) -> RateGate:
        return self._gate

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_json(
        self, endpoint: str, path: str, params: Mapping[str, str | int] | None = None
    ) -> Any:
        """GET and decode JSON, retrying what is worth retrying."""
        return (await self.request(endpoint, "GET", path, params=params)).body

    async def request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        allow_empty: bool = False,
    ) -> Reply:
        """Send, retry what is worth retrying, decode JSON. ``path`` may be an absolute URL of
        the same origin (a pagination link)."""
        call = _Call(method, path, params, json, data, headers, authenticated, allow_empty)
        async for attempt in stamina.retry_context(
            on=self._should_retry,
            attempts=self._retry.attempts,
            timeout=None,
            wait_initial=self._retry.initial_backoff_seconds,
            wait_max=self._retry.max_backoff_seconds,
            wait_jitter=self._retry.jitter_seconds,
        ):
            with attempt:
                return await self._send_once(endpoint, call)
        raise AssertionError("unreachable: stamina re-raises the last error")

    def same_origin(self, url: str) -> bool:
        target = self._client.base_url.join(url)
        base = self._client.base_url
        return (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)

    async def get_linked(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str | int] | None,
        *,
        max_pages: int,
        items_key: str,
    ) -> list[Any]:
        """Follow RFC 8288 ``rel="next"`` links: at most ``max_pages``, never twice to the same
        page, never to another origin (which would receive our Authorization header)."""
        items: list[Any] = []
        seen: set[str] = set()
        url: str | None = path
        for _ in range(max_pages):
            assert url is not None
            reply = await self.request(endpoint, "GET", url, params=params)
            try:
                items.extend(list_items(reply.body, items_key))
            except VendorError:
                self.stats.parse_errors += 1
                raise
            seen.add(str(self._client.base_url.join(reply.url)))
            url = reply.links.get("next")
            params = None
            if url is None:
                return items
            if not self.same_origin(url):
                logger.warning(
                    "msg=%s endpoint=%s", "refused a pagination link to another origin", endpoint
                )
                self.stats.parse_errors += 1
                return items
            if str(self._client.base_url.join(url)) in seen:
                logger.warning("msg=%s endpoint=%s", "pagination links form a cycle", endpoint)
                self.stats.parse_errors += 1
                return items
        logger.warning(
            "msg=%s endpoint=%s pages=%s", "stopped at the page limit", endpoint, max_pages
        )
        return items

    def _should_retry(self, exc: Exception) -> bool | float:
        if isinstance(exc, RateLimited):
            if exc.retry_after > self._retry.max_retry_after_seconds:
                return False
            logger.info("msg=%s reason=%s wait_seconds=%.1f", "retrying", str(exc), exc.retry_after)
            return exc.retry_after
        if isinstance(exc, TransientError):
            logger.info("msg=%s reason=%s", "retrying", str(exc))
            return True
        return False

    async def _send_once(self, endpoint: str, call: _Call) -> Reply:
        if _SENDING.get():
            return await self._exchange(endpoint, call, self.pacer.bypass(endpoint))
        while True:
            await self._gate.wait()
            ticket = await self.pacer.acquire(endpoint)
            sent = False
            try:
                # A 429 may have paused the source while this call waited for its turn.
                if self._gate.remaining() > 0:
                    continue
                async with self._slots:
                    if self._gate.remaining() > 0:
                        continue
                    sent = True
                    self._sending += 1
                    marker = _SENDING.set(True)
                    try:
                        return await self._exchange(endpoint, call, ticket)
                    finally:
                        _SENDING.reset(marker)
                        self._sending -= 1
            finally:
                if not sent:
                    self.pacer.release(ticket)

    async def _exchange(self, endpoint: str, call: _Call, ticket: Ticket) -> Reply:
        url = self._client.base_url.join(call.path)
        what = f"{call.method} {url.path}"
        limit = self._body_limits.get(endpoint, self._max_body)
        request = self._client.build_request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            data=call.data,
            headers=call.headers,
            extensions={BODY_LIMIT: limit},
        )
        answered = False
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._client.send(
                    request,
                    auth=USE_CLIENT_DEFAULT if call.authenticated else None,
                    stream=True,
                )
                answered = True
                try:
                    return await self._reply(endpoint, call, ticket, response, limit)
                finally:
                    await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.pacer.release(ticket)
            self.stats.requests[endpoint, _failure(exc)] += 1
            raise TransientError(f"{what}: {_reason(exc)}") from None
        except (httpx.TransportError, TimeoutError) as exc:
            if not answered:
                self.pacer.observe(ticket, Report())
            self.stats.requests[endpoint, _failure(exc)] += 1
            raise TransientError(f"{what}: {_reason(exc)}") from None
        except BodyTooLarge as exc:
            # Not retried: the vendor would send the same again.
            if not answered:
                self.pacer.observe(ticket, Report())
            self.stats.requests[endpoint, "too_large"] += 1
            raise VendorError(f"{what}: {exc}") from None
        except BaseException:
            # Cancelled, or a failure in the auth flow: the call may have reached the vendor.
            if not answered:
                self.pacer.observe(ticket, Report())
            raise

    async def _reply(
        self, endpoint: str, call: _Call, ticket: Ticket, response: httpx.Response, limit: int
    ) -> Reply:
        """The answer to a call whose headers have come: an error for its status, else its
        body, read within ``limit`` bytes and decoded. Settles the call's ticket."""
        what = f"{call.method} {response.request.url.path}"
        code = response.status_code
        failed = not 200 <= code < 300 or (code == 204 and call.allow_empty)
        content = bytearray()
        try:
            if failed:
                # No decision depends on the body of a failure: it is not read.
                await response.aclose()
            else:
                content = await read_body(response, limit)
        finally:
            # Only now, and nothing awaited from here on: a pause this starts (a 429, an
            # exhausted budget) must find the call out of its slot at once.
            self._record_budget(endpoint, response.headers, ticket, code)
        if failed:
            self.stats.requests[endpoint, str(code)] += 1
            if code == 429:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
                wait = 1.0 if retry_after is None else retry_after
                self._gate.block_for(wait)
                raise RateLimited(f"{what}: HTTP 429 (retry after {wait:g}s)", wait)
            if code >= 500:
                raise TransientError(f"{what}: HTTP {code}", code)
            if code == 401:
                raise VendorError(f"{what}: HTTP 401 (check the credentials)", code)
            if code == 204:
                return Reply(None, response.headers, str(response.url), {})
            raise VendorError(f"{what}: HTTP {code}", code)
        self.stats.requests[endpoint, str(code)] += 1
        links = {
            rel: link["url"] for rel, link in response.links.items() if rel and link.get("url")
        }
        if call.allow_empty and not content.strip():
            return Reply(None, response.headers, str(response.url), links)
        try:
            body, replaced = decode_json(content)
        except NotJson as exc:
            self.stats.parse_errors += 1
            raise VendorError(f"{what}: {exc}") from None
        if replaced:
            logger.info("msg=%s endpoint=%s", "replaced bytes that are not UTF-8", endpoint)
            self.stats.parse_errors += 1
        return Reply(body, response.headers, str(response.url), links)

    def _record_budget(
        self, endpoint: str, headers: httpx.Headers, ticket: Ticket, status: int
    ) -> None:
        now = self._clock()
        report = read_report(headers, now)
        self.pacer.observe(ticket, report, status)
        if report.remaining is not None:
            self.stats.limit_remaining = report.remaining
        if report.resets is not None:
            self.stats.limit_resets = report.resets
        if report.cost is not None:
            self.stats.limit_cost[endpoint] += report.cost
        if self.stats.limit_remaining is not None and self.stats.limit_remaining <= 0:
            until_reset = (self.stats.limit_resets or 0) - now
            pause = min(max(until_reset, 1.0), self._retry.max_retry_after_seconds)
            logger.warning("msg=%s pause_seconds=%.0f", "API budget exhausted, pausing", pause)
            self._gate.block_for(pause)


def _failure(exc: httpx.TransportError | TimeoutError) -> str:
    return "timeout" if isinstance(exc, httpx.TimeoutException | TimeoutError) else "error"


def _reason(exc: httpx.TransportError | TimeoutError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out (the call's deadline passed)"
    return "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__

"""What the web config asks of every HTTP request, as a pure ASGI middleware: the rate limit,
basic auth against bcrypt hashes, and the configured response headers. Every path is covered,
the health endpoints included, as the toolkit covers its whole handler.

bcrypt is slow by design (about 70 ms at cost 10), so a verified (user, hash, password) is
remembered under a keyed hash of the three, never the password itself, in a bounded LRU: a scrape
pays bcrypt once, not on every request. Only one bcrypt runs at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

import bcrypt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.webconfig import LiveWebConfig, WebConfig

CACHE_SIZE: Final = 1024
# bcrypt reads the first 72 bytes; Go's x/crypto compares those, bcrypt 5 raises instead.
_BCRYPT_MAX: Final = 72


def check_password(password: bytes, hashed: bytes) -> bool:
    """bcrypt's own comparison, which runs in constant time."""
    try:
        return bcrypt.checkpw(password[:_BCRYPT_MAX], hashed)
    except ValueError:
        return False


def parse_basic(header: bytes | None) -> tuple[bytes, bytes] | None:
    """(user, password) from an ``Authorization: Basic`` header, as Go's ``Request.BasicAuth``."""
    if header is None or header[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


class BasicAuth:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, bool] = OrderedDict()
        self._size = size
        self._lock = asyncio.Lock()

    def _cache_key(self, *parts: bytes) -> bytes:
        # Length-prefixed so that no two (user, hash, password) triples share a key (the
        # toolkit's CVE-2022-46146 was an ambiguous key).
        message = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _cached(self, key: bytes) -> bool | None:
        found = self._verified.get(key)
        if found is not None:
            self._verified.move_to_end(key)
        return found

    async def verify(self, users: Mapping[str, bytes], header: bytes | None) -> bool:
        credentials = parse_basic(header)
        if credentials is None or not users:
            return False
        user, password = credentials
        hashed = users.get(user.decode("utf-8", "surrogateescape"))
        known = hashed is not None
        if hashed is None:
            # An unknown user costs a bcrypt like a known one, at a configured cost, so that
            # timing does not tell which users exist; the result is never accepted.
            hashed = next(iter(users.values()))
        key = self._cache_key(user, hashed, password)
        matched = self._cached(key)
        if matched is None:
            async with self._lock:
                matched = self._cached(key)
                if matched is None:
                    matched = await asyncio.to_thread(check_password, password, hashed)
                    self._verified[key] = matched
                    while len(self._verified) > self._size:
                        self._verified.popitem(last=False)
        return known and matched


class TokenBucket:
    """golang.org/x/time/rate's limiter: ``burst`` tokens, one more every ``every`` seconds."""

    def __init__(
        self, every: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) / self._every)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


async def _plain(send: Send, status: int, text: str, *headers: tuple[bytes, bytes]) -> None:
    body = f"{text}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WebGuard:
    """The ASGI middleware: rate limit, then basic auth, then the app; the configured headers on
    every response, refusals included."""

    def __init__(self, app: ASGIApp, live: LiveWebConfig) -> None:
        self.app = app
        self.live = live
        self.auth = BasicAuth()
        self._bucket: TokenBucket | None = None
        self._bucket_for: WebConfig | None = None

    def _allow(self, web: WebConfig) -> bool:
        if web.rate_limit is None:
            return True
        if self._bucket_for is not web:
            if self._bucket_for is None or self._bucket_for.rate_limit != web.rate_limit:
                self._bucket = TokenBucket(*web.rate_limit)
            self._bucket_for = web
        assert self._bucket is not None
        return self._bucket.allow()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        web = self.live.current
        extra = web.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        reply = send_with_headers if extra else send
        if not self._allow(web):
            await _plain(reply, 429, "Too Many Requests")
            return
        if web.users:
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if not await self.auth.verify(web.users, header):
                await _plain(reply, 401, "Unauthorized", (b"www-authenticate", b"Basic"))
                return
        await self.app(scope, receive, reply)

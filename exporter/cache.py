"""Time: how long each vendor response is good for, and one load at a time per response.

An ``EndpointCache`` remembers each vendor response (per endpoint and key) until its TTL
passes, shares one in-flight load between callers, and after a failure hands back the last
good value (younger than the maximum age) on the ``FetchError``. It never parses anything.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Final, TypeVar

from exporter.config import CacheConfig
from exporter.source import Fetched, FetchError, safe_reason

T = TypeVar("T")

# After a failed load, wait this long (or the endpoint's TTL, if shorter) before trying again,
# so that a broken vendor is not asked again on every scrape.
FAILURE_RETRY_SECONDS: Final = 60.0


class EndpointCache:
    """One source's responses. A TTL comes from ``cache.endpoints`` in the config, else from
    ``cache.ttl_seconds`` when the config sets it, else from the vendor's default for the
    endpoint (``defaults``; None: ``ttl_seconds``'s default)."""

    def __init__(
        self,
        config: CacheConfig,
        clock: Callable[[], float] = time.time,
        defaults: Mapping[str, float | None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._defaults = dict(defaults or {})
        self._entries: dict[tuple[str, str], Fetched[Any]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[Fetched[Any]]] = {}
        # Loads started per endpoint: with the API request counters, the calls one load costs.
        self.loads: Counter[str] = Counter()

    def ttl(self, endpoint: str) -> float:
        configured = self._config.endpoints.get(endpoint)
        if configured is not None:
            return configured
        # A ttl_seconds set in the config applies to every endpoint, as it always has; left
        # unset, each endpoint gets its vendor's default.
        default = self._defaults.get(endpoint)
        if default is None or "ttl_seconds" in self._config.model_fields_set:
            return self._config.ttl_seconds
        return default

    async def fetch(self, endpoint: str, key: str, load: Callable[[], Awaitable[T]]) -> Fetched[T]:
        slot = (endpoint, key)
        entry = self._entries.get(slot)
        if entry is not None and self._clock() < entry.expires:
            return entry
        inflight = self._inflight.get(slot)
        if inflight is None:
            inflight = asyncio.ensure_future(self._load(slot, load))
            self._inflight[slot] = inflight
            inflight.add_done_callback(lambda _: self._inflight.pop(slot, None))
        return await asyncio.shield(inflight)

    async def _load(self, slot: tuple[str, str], load: Callable[[], Awaitable[T]]) -> Fetched[T]:
        self.loads[slot[0]] += 1
        try:
            value = await load()
        except Exception as exc:
            retry_at = self._clock() + min(FAILURE_RETRY_SECONDS, self.ttl(slot[0]))
            raise FetchError(safe_reason(exc), self._fresh_enough(slot), retry_at) from exc
        now = self._clock()
        entry = Fetched(value, now, now + self.ttl(slot[0]))
        self._entries[slot] = entry
        return entry

    def _fresh_enough(self, slot: tuple[str, str]) -> Fetched[Any] | None:
        entry = self._entries.get(slot)
        if entry is None or self._clock() - entry.fetched_at > self._config.max_age_seconds:
            return None
        return entry

    def keys(self) -> Counter[str]:
        """How many keys (customers, instances, ...) each endpoint holds now."""
        return Counter(endpoint for endpoint, _ in self._entries)

    def cancel(self) -> None:
        for future in list(self._inflight.values()):
            future.cancel()

    def retain(self, endpoint: str, keys: Collection[str]) -> None:
        for slot in [s for s in self._entries if s[0] == endpoint and s[1] not in keys]:
            del self._entries[slot]

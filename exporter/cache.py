"""Time: per-endpoint TTLs, single-flight refreshes, stale data and the scrape deadline.

Two layers. An ``EndpointCache`` remembers each vendor response (per endpoint and key) until its
TTL passes, and shares one in-flight load between callers. A ``SourceRunner`` drives one
source's refresh as a single background task that scrapes wait on, but only until their
deadline; a refresh that outlives a scrape finishes for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from exporter.config import CacheConfig
from exporter.http import ApiStats, VendorError
from exporter.model import Snapshot

logger = logging.getLogger(__name__)

T = TypeVar("T")

# After a failed load, wait this long (or the endpoint's TTL, if shorter) before trying again,
# so that a broken vendor is not asked again on every scrape.
FAILURE_RETRY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    value: T
    fetched_at: float


class FetchError(Exception):
    """A load failed. ``stale`` is the last good value, if it is younger than the maximum age."""

    def __init__(self, reason: str, stale: Cached[Any] | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale


def safe_reason(exc: BaseException) -> str:
    """A failure description fit for logs and pages: our own messages, else the type name."""
    if isinstance(exc, VendorError | FetchError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__


class EndpointCache:
    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._entries: dict[tuple[str, str], Cached[Any]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[Cached[Any]]] = {}
        self._retry_at: dict[tuple[str, str], float] = {}

    async def get(self, endpoint: str, key: str, load: Callable[[], Awaitable[T]]) -> Cached[T]:
        slot = (endpoint, key)
        entry = self._entries.get(slot)
        if entry is not None and self._clock() < entry.fetched_at + self._config.ttl(endpoint):
            return entry
        inflight = self._inflight.get(slot)
        if inflight is None:
            inflight = asyncio.ensure_future(self._load(slot, load))
            self._inflight[slot] = inflight
            inflight.add_done_callback(lambda _: self._inflight.pop(slot, None))
        return await asyncio.shield(inflight)

    async def _load(self, slot: tuple[str, str], load: Callable[[], Awaitable[T]]) -> Cached[T]:
        try:
            value = await load()
        except Exception as exc:
            self._retry_at[slot] = self._clock() + min(
                FAILURE_RETRY_SECONDS, self._config.ttl(slot[0])
            )
            raise FetchError(safe_reason(exc), self._fresh_enough(slot)) from exc
        entry = Cached(value, self._clock())
        self._entries[slot] = entry
        self._retry_at.pop(slot, None)
        return entry

    def _fresh_enough(self, slot: tuple[str, str]) -> Cached[Any] | None:
        entry = self._entries.get(slot)
        if entry is None or self._clock() - entry.fetched_at > self._config.max_age_seconds:
            return None
        return entry

    def next_due(self) -> float:
        """When the earliest entry expires or a failed load may be tried again."""
        expiries = [e.fetched_at + self._config.ttl(ep) for (ep, _), e in self._entries.items()]
        return min([*expiries, *self._retry_at.values()], default=0.0)

    def cancel(self) -> None:
        for future in list(self._inflight.values()):
            future.cancel()

    def retain(self, endpoint: str, keys: set[str]) -> None:
        """Forget entries of keys the vendor no longer lists (a customer that left)."""
        for slot in [s for s in self._entries if s[0] == endpoint and s[1] not in keys]:
            del self._entries[slot]
        for slot in [s for s in self._retry_at if s[0] == endpoint and s[1] not in keys]:
            del self._retry_at[slot]


class Source(Protocol):
    name: str
    provider: str
    stats: ApiStats

    async def collect(self, cache: EndpointCache) -> Snapshot: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceState:
    """What one source looks like to a scrape. ``generation`` changes whenever anything does."""

    name: str
    provider: str
    stats: ApiStats
    generation: int = 0
    snapshot: Snapshot | None = None
    up: bool = False
    refreshed: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    duration: float | None = None
    error: str | None = None
    refreshing: bool = field(default=False, compare=False)


class SourceRunner:
    def __init__(
        self,
        source: Source,
        cache_config: CacheConfig,
        refresh_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self._config = cache_config
        self._refresh_timeout = refresh_timeout
        self._clock = clock
        self.endpoints = EndpointCache(cache_config, clock)
        self._task: asyncio.Task[None] | None = None
        self._next_due = 0.0
        self._state = SourceState(source.name, source.provider, source.stats)

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task if self._task is not None and not self._task.done() else None

    def due(self) -> bool:
        return self.task is None and self._clock() >= self._next_due

    def refresh(self) -> asyncio.Task[None]:
        """Start a refresh unless one is running; either way, return the running one."""
        task = self.task
        if task is None:
            task = asyncio.create_task(self._refresh(), name=f"refresh-{self.source.name}")
            self._task = task
        return task

    async def _refresh(self) -> None:
        started, started_mono = self._clock(), time.monotonic()
        try:
            async with asyncio.timeout(self._refresh_timeout):
                snapshot = await self.source.collect(self.endpoints)
        except Exception as exc:
            reason = safe_reason(exc)
            if isinstance(exc, TimeoutError):
                reason = f"refresh timed out after {self._refresh_timeout:g}s"
            logger.warning("msg=%s source=%s reason=%s", "refresh failed", self.source.name, reason)
            self._next_due = self._clock() + min(FAILURE_RETRY_SECONDS, self._config.ttl_seconds)
            self._state = replace(
                self._state,
                generation=self._state.generation + 1,
                up=False,
                refreshed=True,
                last_attempt=started,
                duration=time.monotonic() - started_mono,
                error=reason,
            )
            return
        duration = time.monotonic() - started_mono
        self._next_due = self.endpoints.next_due()
        logger.info(
            "msg=%s source=%s duration_seconds=%.3f customers=%d customer_errors=%d",
            "refreshed",
            self.source.name,
            duration,
            len(snapshot.customers),
            len(snapshot.customer_errors),
        )
        self._state = replace(
            self._state,
            generation=self._state.generation + 1,
            snapshot=snapshot,
            up=True,
            refreshed=True,
            last_success=self._clock(),
            last_attempt=started,
            duration=duration,
            error=None,
        )

    def state(self) -> SourceState:
        """The current state, with data past the maximum age dropped."""
        state = self._state
        snapshot = state.snapshot
        if (
            snapshot is not None
            and self._clock() - snapshot.oldest_data > self._config.max_age_seconds
        ):
            logger.warning("msg=%s source=%s", "dropping data past max age", self.source.name)
            state = replace(state, snapshot=None, generation=state.generation + 1)
            self._state = state
        return replace(state, refreshing=self.task is not None)

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.endpoints.cancel()
        await self.source.aclose()


class Collector:
    """All sources, as one scrape sees them."""

    def __init__(self, runners: Sequence[SourceRunner]) -> None:
        self.runners = tuple(runners)

    def start_due(self) -> None:
        for runner in self.runners:
            if runner.due():
                runner.refresh()

    async def states(self, deadline: float) -> tuple[SourceState, ...]:
        """Refresh what is due, wait for refreshes in flight until the deadline, then report."""
        self.start_due()
        running = [task for runner in self.runners if (task := runner.task) is not None]
        if running:
            await asyncio.wait(running, timeout=deadline)
        return self.snapshot_states()

    def snapshot_states(self) -> tuple[SourceState, ...]:
        return tuple(runner.state() for runner in self.runners)

    def ready(self) -> bool:
        return all(runner.state().refreshed for runner in self.runners)

    async def stop(self) -> None:
        await asyncio.gather(*(runner.stop() for runner in self.runners))

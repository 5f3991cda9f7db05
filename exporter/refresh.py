"""When sources refresh: one background refresh per source that scrapes wait on, but only until
their deadline; a refresh that outlives a scrape finishes for the next one. Data past the
maximum age is dropped here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from exporter.cache import FAILURE_RETRY_SECONDS, EndpointCache
from exporter.config import CacheConfig
from exporter.http import ApiStats
from exporter.model import Snapshot
from exporter.source import Source, safe_reason

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceState:
    """What one source looks like to a scrape. ``generation`` changes whenever anything does."""

    name: str
    vendor: str
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
        ttls: Mapping[str, float | None] | None = None,
    ) -> None:
        self.source = source
        self._config = cache_config
        self._refresh_timeout = refresh_timeout
        self._clock = clock
        self.endpoints = EndpointCache(cache_config, clock, ttls)
        self._task: asyncio.Task[None] | None = None
        self._next_due = 0.0
        self._state = SourceState(source.name, source.vendor, source.stats)

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


class Scheduler:
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

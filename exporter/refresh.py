"""When sources refresh: one background refresh per source that scrapes wait on, but only until
their deadline; a refresh that outlives a scrape finishes for the next one. Data past the
maximum age is dropped here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from exporter.budget import BudgetView
from exporter.cache import FAILURE_RETRY_SECONDS, EndpointCache
from exporter.config import CacheConfig
from exporter.crawl import Crawl, CrawlView
from exporter.filters import CustomerMatcher
from exporter.http import ApiStats
from exporter.model import Snapshot, merge
from exporter.plan import SourcePlan
from exporter.source import Listing, Part, Source, safe_reason
from exporter.state import Saved, SourceMeta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceState:
    """What one source looks like to a scrape. ``generation`` changes whenever ``parts`` does;
    everything else (up, errors, counters, crawl and budget) is read live on every scrape."""

    name: str
    vendor: str
    stats: ApiStats
    generation: int = 0
    # Each customer's records as last read, in the vendor's order.
    parts: Mapping[str, Part] = field(default_factory=dict)
    # A customer list has been read (or restored): no parts then means no customers.
    listed: bool = False
    # Customers in the newest customer list read since the start; None before one is read.
    listed_customers: int | None = None
    up: bool = False
    refreshed: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    duration: float | None = None
    error: str | None = None
    refreshing: bool = field(default=False, compare=False)
    crawl: CrawlView = field(default_factory=CrawlView)
    budget: BudgetView | None = None

    @functools.cached_property
    def snapshot(self) -> Snapshot | None:
        """Every part in one snapshot; None before anything was read."""
        if not self.parts and not self.listed:
            return None
        oldest = min((p.oldest for p in self.parts.values()), default=self.last_success or 0.0)
        return merge((p.records for p in self.parts.values()), oldest)


class SourceRunner:
    """One source: its cache, its crawl and what a scrape sees of them.

    ``up`` follows the crawl as it runs: a customer list read or a customer read with fresh
    data sets it, a failed customer list or ``FAILED_READS_DOWN`` customer reads in a row with
    nothing fresh clear it, and so does a running crawl that has made no progress for
    ``stall_seconds``. A crawl cut off by ``refresh_timeout`` keeps what it read, and the next
    one starts at once when that one made progress and customers are still due.
    """

    def __init__(
        self,
        source: Source[Any],
        cache_config: CacheConfig,
        refresh_timeout: float,
        clock: Callable[[], float] = time.time,
        ttls: Mapping[str, float | None] | None = None,
        *,
        workers: int = 4,
        stall_seconds: float = 600.0,
        plan: Callable[[int], SourcePlan] | None = None,
        keep: CustomerMatcher | None = None,
    ) -> None:
        self.source = source
        self._config = cache_config
        self._refresh_timeout = refresh_timeout
        self._stall = stall_seconds
        self._plan = plan
        self._clock = clock
        self.endpoints = EndpointCache(cache_config, clock, ttls)
        self.crawl = Crawl(
            source, self.endpoints, workers=workers, events=self, clock=clock, keep=keep
        )
        self._task: asyncio.Task[None] | None = None
        self._waiters: set[asyncio.Task[None]] = set()
        self._next_due = 0.0
        self._generation = 0
        self._listed = False
        self._up = False
        self._refreshed = False
        self._last_success: float | None = None
        self._last_attempt: float | None = None
        self._duration: float | None = None
        self._error: str | None = None
        self._listing_error: str | None = None
        # What changed since the state file was last written.
        self.changed: set[str] = set()
        self.removed: set[str] = set()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task if self._task is not None and not self._task.done() else None

    @property
    def settled(self) -> bool:
        """Its first crawl has ended (or its data was restored)."""
        return self._refreshed

    def due(self) -> bool:
        return self.task is None and self._clock() >= self._next_due

    def refresh(self) -> asyncio.Task[None]:
        """Start a crawl unless one is running; either way, return the running one."""
        task = self.task
        if task is None:
            task = asyncio.create_task(self._refresh(), name=f"refresh-{self.source.name}")
            self._task = task
        return task

    # Crawl events.

    def listed(self, listing: Listing[Any]) -> None:
        self._listed = True
        self._listing_error = listing.error
        if listing.error:
            self._set(False, f"customer list: {listing.error}")
        else:
            self._last_success = self._clock()
            if not self.crawl.down_streak():
                self._set(True, None)

    def parts_changed(self, changed: set[str], removed: set[str], *, records: bool) -> None:
        if records:
            self._generation += 1
        self.changed |= changed
        self.changed -= removed
        self.removed |= removed
        self.removed -= changed

    def read(self, part: Part) -> None:
        if not part.failed:
            self._last_success = self._clock()
            if self._listing_error is None:
                self._set(True, None)
        elif self.crawl.down_streak():
            self._set(
                False,
                f"{self.crawl.failed_streak} customer reads in a row failed, "
                f"the last: {self.crawl.last_failure}",
            )

    def restore(self, saved: Saved) -> None:
        """Take up where the last run stopped: its parts, its up and its times. The customer
        list is read again by the first crawl; customers whose entry did not change and whose
        data is not due are not read again."""
        meta = saved.meta
        self.crawl.restore(saved.parts, meta.customer_list)
        if self.source.pacer is not None and meta.budget:
            self.source.pacer.restore(meta.budget)
        self._listed = meta.listed
        self._up, self._error = meta.up, meta.error
        self._last_success, self._last_attempt = meta.last_success, meta.last_attempt
        self._refreshed = True
        self._generation += 1
        logger.info(
            "msg=%s source=%s customers=%d up=%d",
            "restored from the state file",
            self.source.name,
            len(saved.parts),
            meta.up,
        )

    def meta(self) -> SourceMeta:
        listing = self.crawl.listing
        return SourceMeta(
            listed=self._listed,
            up=self._up,
            last_success=self._last_success,
            last_attempt=self._last_attempt,
            error=self._error,
            listing_fetched_at=listing.fetched_at if listing is not None else None,
            listing_due=listing.due if listing is not None else None,
            budget=self.source.pacer.dump() if self.source.pacer is not None else {},
            customer_list=self.crawl.customer_list,
        )

    def _set(self, up: bool, error: str | None) -> None:
        if up != self._up:
            logger.info("msg=%s source=%s up=%d", "source state", self.source.name, up)
        self._up, self._error = up, error

    async def _refresh(self) -> None:
        while True:
            started, started_mono = self._clock(), time.monotonic()
            self._last_attempt = started
            timeout = asyncio.timeout(self._refresh_timeout)
            try:
                async with timeout:
                    await self.crawl.run()
            except Exception as exc:
                if not timeout.expired():
                    self._failed(exc, time.monotonic() - started_mono)
                    return
            self._duration = time.monotonic() - started_mono
            self._refreshed = True
            self._next_due = self.crawl.next_due()
            view = self.crawl.view
            if not timeout.expired():
                logger.info(
                    "msg=%s source=%s duration_seconds=%.3f customers=%d read=%d failed=%d",
                    "crawled",
                    self.source.name,
                    self._duration,
                    len(self.crawl.parts),
                    view.read,
                    view.failed,
                )
                return
            logger.info(
                "msg=%s source=%s after_seconds=%g read=%d failed=%d pending=%d",
                "crawl cut off",
                self.source.name,
                self._refresh_timeout,
                view.read,
                view.failed,
                view.pending,
            )
            if view.read == 0:
                self._set(False, f"refresh timed out after {self._refresh_timeout:g}s")
                self._next_due = self._clock() + min(
                    FAILURE_RETRY_SECONDS, self._config.ttl_seconds
                )
                return
            if self._next_due > self._clock():
                return

    def _failed(self, exc: Exception, duration: float) -> None:
        reason = safe_reason(exc)
        logger.warning("msg=%s source=%s reason=%s", "refresh failed", self.source.name, reason)
        self._next_due = self._clock() + min(FAILURE_RETRY_SECONDS, self._config.ttl_seconds)
        self._refreshed = True
        self._duration = duration
        self._set(False, reason)

    def state(self) -> SourceState:
        """The current state, with data past the maximum age dropped."""
        self.crawl.expire(self._config.max_age_seconds)
        up, error = self._up, self._error
        view = self.crawl.view
        if view.running and up:
            since = max(view.last_progress or 0.0, view.started or 0.0)
            if self._clock() - since > self._stall:
                up, error = False, f"no progress for {self._stall:g}s"
        return SourceState(
            name=self.source.name,
            vendor=self.source.vendor,
            stats=self.source.stats,
            generation=self._generation,
            parts=dict(self.crawl.parts),
            listed=self._listed,
            listed_customers=(
                len(self.crawl.listing.customers) if self.crawl.listing is not None else None
            ),
            up=up,
            refreshed=self._refreshed,
            last_success=self._last_success,
            last_attempt=self._last_attempt,
            duration=self._duration,
            error=error,
            refreshing=self.task is not None,
            crawl=view,
            budget=self._budget(),
        )

    def _budget(self) -> BudgetView | None:
        pacer = self.source.pacer
        view = pacer.view() if pacer is not None else None
        listing = self.crawl.listing
        customers = len(listing.customers) if listing is not None else len(self.crawl.parts)
        if self._plan is None:
            return view
        plan = self._plan(customers)
        allowed = view.allowed_per_hour if view is not None else None
        return BudgetView(
            remaining=view.remaining if view is not None else None,
            allowed_per_hour=allowed,
            planned_per_hour=plan.calls_per_hour,
            cover_seconds=plan.cover_seconds(allowed),
        )

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.endpoints.cancel()
        await self.source.aclose()


class Persister(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


async def settle(runners: Sequence[SourceRunner], deadline: float) -> None:
    """Start the runners' crawls that are due, then wait until the deadline for those and for
    first crawls; a long crawl already under way goes on in the background."""
    started = {runner.refresh() for runner in runners if runner.due()}
    waiting = [
        task
        for runner in runners
        if (task := runner.task) is not None and (task in started or not runner.settled)
    ]
    if waiting:
        await asyncio.wait(waiting, timeout=deadline)


class Scheduler:
    """All sources, as one scrape sees them."""

    def __init__(
        self, runners: Sequence[SourceRunner], persistence: Persister | None = None
    ) -> None:
        self.runners = tuple(runners)
        self._persistence = persistence

    def start(self, *, warm_up: bool) -> None:
        """With the server: the state file's writer, and a first crawl when warming up."""
        if self._persistence is not None:
            self._persistence.start()
        if warm_up:
            self.start_due()

    def start_due(self) -> list[asyncio.Task[None]]:
        """Start the crawls that are due; the tasks started."""
        return [runner.refresh() for runner in self.runners if runner.due()]

    async def states(self, deadline: float) -> tuple[SourceState, ...]:
        """Start what is due, then wait until the deadline for the crawls this scrape started
        and for first crawls; a long crawl already under way goes on in the background and the
        scrape serves what it has published so far."""
        await settle(self.runners, deadline)
        return self.snapshot_states()

    def snapshot_states(self) -> tuple[SourceState, ...]:
        return tuple(runner.state() for runner in self.runners)

    def waiting(self) -> list[str]:
        """The sources whose first crawl has not ended (and that were not restored)."""
        return [runner.source.name for runner in self.runners if not runner.settled]

    async def stop(self) -> None:
        await asyncio.gather(*(runner.stop() for runner in self.runners))
        if self._persistence is not None:
            await self._persistence.stop()

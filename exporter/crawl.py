"""Crawling one source customer by customer.

A crawl reads the customer list, then every customer whose data is due, oldest data first, with
a fixed number of workers (the source's ``max_concurrency``): each worker reads one customer at
a time, so the first customers are published after a few calls instead of after the whole
fleet. Each part is published the moment it is read; a crawl cut short keeps what it read, and
the next one starts with the customers whose data is oldest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from exporter.filters import CustomerMatcher
from exporter.source import Listing, Part, Source, Store

logger = logging.getLogger(__name__)

# A source is down once this many customer reads in a row found nothing fresh at all (or all of
# them, when a crawl has fewer customers): a vendor that fails every call, not one bad customer.
FAILED_READS_DOWN: Final = 3


def digest(unit: object) -> str:
    """A stable fingerprint of a listing entry (records' reprs list their values)."""
    return hashlib.blake2b(repr(unit).encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class CrawlView:
    """The current crawl (or the last one, when none runs) as a scrape shows it."""

    running: bool = False
    # Customers the crawl set out to read, and how many of them it has read (well or not).
    total: int = 0
    read: int = 0
    failed: int = 0
    started: float | None = None
    last_progress: float | None = None

    @property
    def progress(self) -> float:
        return 1.0 if self.total == 0 else (self.read + self.failed) / self.total

    @property
    def pending(self) -> int:
        return max(self.total - self.read - self.failed, 0)


class CrawlEvents(Protocol):
    def listed(self, listing: Listing[Any]) -> None:
        """The customer list was read (``listing.error``: only a stale one was at hand)."""

    def parts_changed(self, changed: set[str], removed: set[str], *, records: bool) -> None:
        """Customers published, gone from the list or expired. ``records``: whether any of
        their records changed (else only their times did)."""

    def read(self, part: Part) -> None:
        """A customer was read (after ``parts_changed`` for it)."""


class Crawl:
    """One source's parts and the crawl that keeps them fresh."""

    def __init__(
        self,
        source: Source[Any],
        store: Store,
        *,
        workers: int,
        events: CrawlEvents,
        clock: Callable[[], float] = time.time,
        keep: CustomerMatcher | None = None,
    ) -> None:
        self.source = source
        self._store = store
        self._keep = keep
        # The newest customer list before the filter: id -> name ("" when not given).
        self.customer_list: dict[str, str] = {}
        self._workers = workers
        self._events = events
        self._clock = clock
        self.parts: dict[str, Part] = {}
        self.listing: Listing[Any] | None = None
        # The listing's entries, each as its digest: taken once per customer list.
        self._digests: dict[str, str] = {}
        self.view = CrawlView()
        # Consecutive reads that found nothing fresh, and the last such read's reason.
        self.failed_streak = 0
        self.last_failure: str | None = None

    def next_due(self) -> float:
        """When the next crawl has something to do: the listing or a customer expires."""
        listing = self.listing
        if listing is None:
            return 0.0
        due = listing.due
        for customer_id, unit_digest in self._digests.items():
            part = self.parts.get(customer_id)
            if part is None or part.unit != unit_digest:
                return 0.0
            due = min(due, part.due)
        return due

    def restore(self, parts: dict[str, Part], customer_list: dict[str, str]) -> None:
        # A filter changed since: the customers it leaves out are not served from the file.
        self.parts = self._keep.parts(parts) if self._keep is not None else dict(parts)
        self.customer_list = dict(customer_list)

    def down_streak(self) -> bool:
        return self.failed_streak >= min(FAILED_READS_DOWN, max(self.view.total, 1))

    async def run(self) -> Listing[Any]:
        """One crawl. Raises FetchError when there is no customer list at all."""
        started = self._clock()
        self.view = CrawlView(running=True, started=started)
        try:
            listing = await self.source.listing(self._store)
            self.customer_list = {cid: listing.names.get(cid, "") for cid in listing.customers}
            if self._keep is not None:
                listing = self._keep.listing(listing, self.source.name)
            self.listing = listing
            self._digests = {cid: digest(unit) for cid, unit in listing.customers.items()}
            gone = set(self.parts) - set(listing.customers)
            for customer_id in gone:
                del self.parts[customer_id]
            if gone:
                self._events.parts_changed(set(), gone, records=True)
            # A customer list read again vouches for what the parts took from it: only a part
            # with no reads of its own gets younger (the others' own reads are older).
            vouched = set()
            for customer_id, part in self.parts.items():
                oldest = min(part.own, listing.fetched_at)
                if oldest != part.oldest:
                    self.parts[customer_id] = replace(part, oldest=oldest)
                    vouched.add(customer_id)
            if vouched:
                self._events.parts_changed(vouched, set(), records=False)
            self._events.listed(listing)
            todo = self._due(self._clock())
            self.view = replace(self.view, total=len(todo))
            queue: asyncio.Queue[str] = asyncio.Queue()
            for customer_id in todo:
                queue.put_nowait(customer_id)
            workers = [
                asyncio.create_task(self._worker(queue, listing), name=f"crawl-{self.source.name}")
                for _ in range(min(self._workers, len(todo)))
            ]
            try:
                await asyncio.gather(*workers)
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            return listing
        finally:
            self.view = replace(self.view, running=False)

    def _due(self, now: float) -> list[str]:
        """The customers to read, oldest data first (never read: first of all). A customer
        whose listing entry changed is read again now: its part holds what the entry said."""
        due = []
        for customer_id, unit_digest in self._digests.items():
            part = self.parts.get(customer_id)
            if part is None:
                due.append((float("-inf"), customer_id))
            elif part.due <= now or part.unit != unit_digest:
                due.append((part.oldest, customer_id))
        due.sort(key=lambda item: item[0])
        return [customer_id for _, customer_id in due]

    async def _worker(self, queue: asyncio.Queue[str], listing: Listing[Any]) -> None:
        while not queue.empty():
            customer_id = queue.get_nowait()
            part = await self.source.read(self._store, customer_id, listing.customers[customer_id])
            oldest = min(part.own, listing.fetched_at)
            self.publish(replace(part, unit=self._digests[customer_id], oldest=oldest))

    def publish(self, part: Part) -> None:
        now = self._clock()
        old = self.parts.get(part.customer_id)
        same = old is not None and old.records == part.records
        if old is not None and same:
            # Same records: keep the object, so the renderer's cache of it stays valid.
            part = replace(part, records=old.records)
        self.parts[part.customer_id] = part
        if part.error:
            logger.warning(
                "msg=%s source=%s customer_id=%s failed=%d reason=%s",
                "customer read failed",
                self.source.name,
                part.customer_id,
                part.failed,
                part.error,
            )
        if part.failed:
            self.failed_streak += 1
            self.last_failure = part.error
            self.view = replace(self.view, failed=self.view.failed + 1)
        else:
            self.failed_streak = 0
            self.view = replace(self.view, read=self.view.read + 1, last_progress=now)
        self._events.parts_changed({part.customer_id}, set(), records=not same)
        self._events.read(part)

    def expire(self, max_age: float) -> set[str]:
        """Drop the parts whose oldest data is past the maximum age."""
        cutoff = self._clock() - max_age
        old = {cid for cid, part in self.parts.items() if part.oldest < cutoff}
        for customer_id in old:
            del self.parts[customer_id]
        if old:
            logger.warning(
                "msg=%s source=%s customers=%d",
                "dropping data past max age",
                self.source.name,
                len(old),
            )
            self._events.parts_changed(set(), old, records=True)
        return old

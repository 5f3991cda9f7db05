"""The contract between a vendor's source and the generic machinery around it.

A source turns one vendor API into a ``Snapshot`` of vendor-neutral records. It reads through a
``Store`` (the cache): ``fetch`` returns a value with its fetch time, or raises ``FetchError``
with the last good value attached. A ``Reading`` makes the one decision every source needs,
"use the last good value and note the problem", so that no source repeats it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from exporter.http import ApiStats, VendorError
from exporter.model import Snapshot

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    value: T
    fetched_at: float


class FetchError(Exception):
    """A load failed. ``stale`` is the last good value, if it is younger than the maximum age."""

    def __init__(self, reason: str, stale: Fetched[Any] | None) -> None:
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


class Store(Protocol):
    """What a source may ask of the cache."""

    async def fetch(
        self, endpoint: str, key: str, load: Callable[[], Awaitable[T]]
    ) -> Fetched[T]: ...

    def retain(self, endpoint: str, keys: Collection[str]) -> None:
        """Forget the entries of keys the vendor no longer lists (a customer that left)."""


class Source(Protocol):
    name: str
    vendor: str
    stats: ApiStats

    async def collect(self, store: Store) -> Snapshot: ...

    async def aclose(self) -> None: ...


class Reading:
    """One unit of a refresh (a customer, an instance, a job): its reads, the problems met and
    the fetch time of its oldest data. A failed read falls back to the last good value."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.problems: list[str] = []
        self.oldest = clock()

    async def fetch(
        self, what: str, endpoint: str, key: str, load: Callable[[], Awaitable[T]]
    ) -> Fetched[T] | None:
        """The fresh or last good value; None when there is neither. ``what`` names the read
        in the problem noted."""
        try:
            got: Fetched[T] | None = await self._store.fetch(endpoint, key, load)
        except FetchError as exc:
            self.problems.append(f"{what}: {exc.reason}")
            got = exc.stale
        if got is not None:
            self.oldest = min(self.oldest, got.fetched_at)
        return got

    @property
    def error(self) -> str | None:
        return "; ".join(self.problems) or None

"""The contract between a vendor's source and the generic machinery around it.

A source is crawled customer by customer: ``listing`` reads the root of the vendor's tree (the
customer list) and ``read`` reads one customer, returning a ``Part``: that customer's
vendor-neutral records. The crawl (``exporter.crawl``) decides which customer to read when and
publishes each part as soon as it is read.

A source reads through a ``Store`` (the cache): ``fetch`` returns a value with its fetch and
expiry times, or raises ``FetchError`` with the last good value attached. A ``Reading`` makes
the one decision every source needs, "use the last good value and note the problem", so that
no source repeats it, and turns what it read into a ``Part``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from exporter.budget import Pacer
from exporter.http import ApiStats, VendorError
from exporter.model import Snapshot

T = TypeVar("T")
U = TypeVar("U")
U_contra = TypeVar("U_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    value: T
    fetched_at: float
    # When the cache will load it again: the fetch time plus the endpoint's TTL.
    expires: float = float("inf")


class FetchError(Exception):
    """A load failed. ``stale`` is the last good value, if it is younger than the maximum age;
    ``retry_at`` is when the cache will try the load again."""

    def __init__(
        self, reason: str, stale: Fetched[Any] | None, retry_at: float = float("inf")
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale
        self.retry_at = retry_at


@dataclass(frozen=True, slots=True)
class Part:
    """One customer's records as last read.

    ``records`` holds only this customer's records (``oldest_data`` unused: see ``oldest``) and
    compares equal to an earlier read that found the same, so that an unchanged customer is
    not rendered again. ``due`` is when any of the data behind it expires."""

    customer_id: str
    records: Snapshot
    oldest: float
    due: float
    error: str | None = None
    # Every read behind it failed: nothing in it is fresh.
    failed: bool = False
    # A digest of the listing entry it was read with: a changed entry makes it due at once.
    unit: str = ""
    # Fetch time of the oldest of its own reads (inf: none). ``oldest`` also counts the
    # customer list, which every part draws on: the crawl sets it.
    own: float = float("inf")


@dataclass(frozen=True, slots=True)
class Listing(Generic[U]):
    """The root of a crawl: every customer the vendor lists, in the vendor's order, each with
    whatever ``Source.read`` needs for it. ``error`` says the listing is a stale one because
    reading it failed."""

    customers: Mapping[str, U]
    fetched_at: float
    due: float
    error: str | None = None
    # Display names by customer id, where the list gives them (for customer filters).
    names: Mapping[str, str] = field(default_factory=dict)


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


class Source(Protocol[U_contra]):
    name: str
    vendor: str
    stats: ApiStats

    @property
    def pacer(self) -> Pacer | None:
        """The vendor client's pacing, for the budget gauges and the state file."""

    async def listing(self, store: Store) -> Listing[Any]:
        """The customer list. Raises FetchError when neither a fresh nor a stale one exists."""

    async def read(self, store: Store, customer_id: str, unit: U_contra) -> Part:
        """One customer, given its entry of the listing. Never raises for a vendor failure:
        the problems go into the part's ``error``."""

    async def aclose(self) -> None: ...


async def read_root(
    store: Store,
    what: str,
    endpoint: str,
    load: Callable[[], Awaitable[T]],
) -> tuple[T, Reading]:
    """The root of a crawl (the customer list), fresh or stale; FetchError when neither."""
    reading = Reading(store)
    got = await reading.fetch_required(what, endpoint, "", load)
    return got.value, reading


class Reading:
    """One unit of a crawl (a customer, an instance, a job): its reads, the problems met, the
    fetch time of its oldest data and when the first of it expires. A failed read falls back
    to the last good value."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.problems: list[str] = []
        self.oldest = float("inf")
        self.due = float("inf")
        self.fresh = 0
        self.failures = 0

    async def fetch(
        self, what: str, endpoint: str, key: str, load: Callable[[], Awaitable[T]]
    ) -> Fetched[T] | None:
        """The fresh or last good value; None when there is neither. ``what`` names the read
        in the problem noted."""
        got: Fetched[T] | None
        try:
            fresh = await self._store.fetch(endpoint, key, load)
        except FetchError as exc:
            self.problems.append(f"{what}: {exc.reason}")
            self.failures += 1
            self.due = min(self.due, exc.retry_at)
            got = exc.stale
        else:
            self.fresh += 1
            self.due = min(self.due, fresh.expires)
            got = fresh
        if got is not None:
            self.oldest = min(self.oldest, got.fetched_at)
        return got

    async def fetch_required(
        self, what: str, endpoint: str, key: str, load: Callable[[], Awaitable[T]]
    ) -> Fetched[T]:
        """``fetch`` for what the crawl cannot go on without (the customer list and what it is
        made of): with neither a fresh nor a stale value, FetchError."""
        got = await self.fetch(what, endpoint, key, load)
        if got is None:
            raise FetchError(self.error or f"{what}: unavailable", None)
        return got

    def note(self, problem: str) -> None:
        """A problem met elsewhere (in the customer list) that concerns this unit."""
        self.problems.append(problem)

    def merge_timing(self, other: Reading) -> None:
        """Take in another reading's ages and expiries, not its problems."""
        self.oldest = min(self.oldest, other.oldest)
        self.due = min(self.due, other.due)

    def merge(self, other: Reading) -> None:
        """Take in a sub-unit's reads (an instance of this customer)."""
        self.problems.extend(other.problems)
        self.fresh += other.fresh
        self.failures += other.failures
        self.oldest = min(self.oldest, other.oldest)
        self.due = min(self.due, other.due)

    @property
    def error(self) -> str | None:
        return "; ".join(self.problems) or None

    def listing(
        self, customers: Mapping[str, U], names: Mapping[str, str | None] | None = None
    ) -> Listing[U]:
        """The customer list read through this reading, with the names it gives."""
        known = {cid: name for cid, name in (names or {}).items() if name}
        return Listing(customers, self.oldest, self.due, self.error, known)

    def part(self, customer_id: str, records: Snapshot) -> Part:
        """This customer's part; its error, if any, goes into the records too."""
        error = self.error
        if error:
            records = dataclasses.replace(records, customer_errors={customer_id: error})
        # Problems noted from elsewhere (the customer list) do not make the read a failure.
        failed = self.failures > 0 and self.fresh == 0
        return Part(customer_id, records, self.oldest, self.due, error, failed, own=self.oldest)

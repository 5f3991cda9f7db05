"""Which of a source's customers are crawled and exported: its `customers: {include, exclude}`.

An entry is a customer id or display name, matched exactly, or `{regex: ...}`, matched against
the whole id or name (anchored, as Prometheus anchors its regexes). A customer is kept when the
include list is empty or one of its entries matches, and no exclude entry matches. Customers
whose name the vendor's customer list does not give are matched by id alone until their name is
known.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from typing import Any

from exporter.settings import CustomerFilter, CustomerPattern
from exporter.source import Listing, Part

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class _Entries:
    exact: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, entries: tuple[str | CustomerPattern, ...]) -> _Entries:
        exact = frozenset(e for e in entries if isinstance(e, str))
        patterns = tuple(re.compile(e.regex) for e in entries if not isinstance(e, str))
        return cls(exact, patterns)

    def __bool__(self) -> bool:
        return bool(self.exact or self.patterns)

    def match(self, *values: str) -> bool:
        return any(
            value in self.exact or any(p.fullmatch(value) for p in self.patterns)
            for value in values
        )


class CustomerMatcher:
    def __init__(self, settings: CustomerFilter) -> None:
        self._include = _Entries.of(settings.include)
        self._exclude = _Entries.of(settings.exclude)

    @property
    def active(self) -> bool:
        return bool(self._include or self._exclude)

    def keeps(self, customer_id: str, name: str | None = None) -> bool:
        values = (customer_id,) if not name else (customer_id, name)
        if self._include and not self._include.match(*values):
            return False
        return not self._exclude.match(*values)

    def listing(self, listing: Listing[Any], source: str) -> Listing[Any]:
        """The listing with only the customers kept."""
        if not self.active:
            return listing
        kept = {
            cid: unit
            for cid, unit in listing.customers.items()
            if self.keeps(cid, listing.names.get(cid))
        }
        logger.info(
            "msg=%s source=%s kept=%d listed=%d",
            "customer filter",
            source,
            len(kept),
            len(listing.customers),
        )
        return dataclasses.replace(listing, customers=kept)

    def parts(self, parts: Mapping[str, Part]) -> dict[str, Part]:
        """Saved parts of the customers kept (by id, and by the names their records give)."""
        return {
            cid: part
            for cid, part in parts.items()
            if self.keeps(cid, next((c.name for c in part.records.customers if c.name), None))
        }

    def count(self, names: Mapping[str, str]) -> int:
        """How many of a customer list (id -> name, "" when unknown) are kept."""
        return sum(1 for cid, name in names.items() if self.keeps(cid, name or None))


def filter_summary(kept: int | None, listed: Mapping[str, str] | None) -> str:
    """What a source's filter does to its last saved customer list, for --config.check."""
    if kept is None or listed is None:
        return "customer filter: keeps an unknown share (no customer list saved yet)"
    return f"customer filter: keeps {kept} of {len(listed)} customers last listed"

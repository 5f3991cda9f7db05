"""Content negotiation: which exposition format and which coding a scrape asked for, by the
q-values of its ``Accept`` and ``Accept-Encoding`` headers (RFC 9110, section 12.5)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

OPENMETRICS: Final = "application/openmetrics-text"
TEXT: Final = "text/plain"
# The OpenMetrics versions our body satisfies; a range asking for another one does not match.
OPENMETRICS_VERSIONS: Final = frozenset({"1.0.0", "0.0.1"})
# Our text body is valid in both versions of the text format.
TEXT_VERSIONS: Final = frozenset({"0.0.4", "1.0.0"})
_GZIP: Final = frozenset({"gzip", "x-gzip"})


@dataclass(frozen=True, slots=True)
class Choice:
    """One element of an Accept-style header: ``value;param=x;q=0.5``."""

    value: str
    params: dict[str, str]
    q: float
    position: int


def _q(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        return 0.0
    # A q-value is 0 to 1; anything else is malformed, and malformed is never a preference.
    return q if math.isfinite(q) and 0.0 <= q <= 1.0 else 0.0


def choices(header: str | None) -> Iterator[Choice]:
    """The header's elements, names and parameter names in lower case, each with its q."""
    for position, element in enumerate((header or "").split(",")):
        value, *raw_params = (part.strip() for part in element.split(";"))
        if not value:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for raw in raw_params:
            name, _, param = raw.partition("=")
            name = name.strip().lower()
            param = param.strip().strip('"')
            if name == "q":
                q = _q(param)
            elif name:
                params[name] = param
        yield Choice(value.lower(), params, q, position)


def _media_rank(choice: Choice, media_type: str, versions: frozenset[str]) -> int | None:
    """How specifically ``choice`` names ``media_type`` (higher: more), or None: it does not."""
    kind = media_type.partition("/")[0]
    if choice.value == "*/*":
        return 0
    if choice.value == f"{kind}/*":
        return 1
    if choice.value != media_type:
        return None
    version = choice.params.get("version")
    if version is None:
        return 2
    return 3 if version in versions else None


def _preference(
    header: str | None, media_type: str, versions: frozenset[str]
) -> tuple[float, int, int]:
    """The q the most specific range matching ``media_type`` gives it (the highest of equally
    specific ones), that rank, and minus its position (on a tie, the client's first choice
    wins); q 0 when nothing matches."""
    best: tuple[int, Choice] | None = None
    for choice in choices(header):
        rank = _media_rank(choice, media_type, versions)
        if rank is not None and (best is None or (rank, choice.q) > (best[0], best[1].q)):
            best = rank, choice
    if best is None:
        return 0.0, -1, 0
    rank, choice = best
    return choice.q, rank, -choice.position


def wants_openmetrics(accept: str | None) -> bool:
    """OpenMetrics only when the client prefers it to the text format; a tie goes to text."""
    openmetrics = _preference(accept, OPENMETRICS, OPENMETRICS_VERSIONS)
    text = _preference(accept, TEXT, TEXT_VERSIONS)
    return openmetrics[0] > 0 and openmetrics > text


def wants_gzip(accept_encoding: str | None) -> bool:
    """gzip when it is acceptable (by name, else by ``*``) and not ranked below an explicit
    ``identity``."""
    gzip: float | None = None
    star: float | None = None
    identity = 0.0
    for choice in choices(accept_encoding):
        if choice.value in _GZIP:
            gzip = max(gzip or 0.0, choice.q)
        elif choice.value == "*":
            star = choice.q
        elif choice.value == "identity":
            identity = choice.q
    q = gzip if gzip is not None else (star or 0.0)
    return q > 0 and q >= identity

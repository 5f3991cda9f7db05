"""The static body, assembled from chunks so that a customer whose records did not change is
never rendered again, and the dynamic tail served with it.

A chunk is the encoded sample lines of one customer's records, per metric family. Chunks are
encoded by prometheus_client itself and split at the family headers, so their bytes are
exactly the library's. Every customer-level metric has ``source, customer_id`` as its first
labels, so laying the chunks out in (source, customer_id) order, family by family, gives the
same sample order as sorting all the rows at once (``render.render_static``).

The tail is the same as ``render.render_dynamic``, but a customer's data age, the one
per-customer line of every scrape, is its sample line as encoded with its chunk, up to the
value, and the value formatted as the library does.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from exporter import catalogue as m
from exporter.catalogue import MetricDef
from exporter.config import MetricsConfig
from exporter.model import Snapshot
from exporter.refresh import SourceState
from exporter.render import (
    PER_SEAT,
    Rows,
    capped,
    encode,
    exporter_rows,
    part_rows,
    source_dynamic_rows,
    source_rows,
)
from exporter.source import Part

Lines = Mapping[MetricDef, bytes]
# Each customer's data-age sample line up to its value, with its part's oldest data, in order.
Ages = tuple[tuple[str, float], ...]

_AGE: Final = m.CUSTOMER_DATA_AGE_SECONDS
# prometheus_client's own value formatting (the library leaves it untyped).
_value: Final[Callable[[float], str]] = floatToGoString

_HELP = b"\n# HELP "


@functools.cache
def header(metric: MetricDef, openmetrics: bool) -> bytes:
    """The family's HELP and TYPE lines, as prometheus_client writes them."""
    return encode([Metric(metric.name, metric.help, metric.kind)], openmetrics=openmetrics)


def _samples(segment: bytes) -> bytes:
    # A segment is one family's text after "# HELP ": the rest of the HELP line, the TYPE
    # line, then the samples. Help texts and label values never hold a raw newline.
    start = segment.find(b"\n", segment.find(b"\n") + 1) + 1
    if start == 0:
        return b""
    samples = segment[start:]
    return samples if samples.endswith(b"\n") else samples + b"\n"


def encode_lines(rows: Rows, *, openmetrics: bool) -> dict[MetricDef, bytes]:
    """Each family's sample lines, without the HELP and TYPE lines."""
    families = rows.families()
    body = encode((family for _, family in families), openmetrics=openmetrics)
    segments = (b"\n" + body).split(_HELP)[1:]
    return {
        metric: _samples(segment) for (metric, _), segment in zip(families, segments, strict=True)
    }


@dataclass(frozen=True, slots=True)
class _Chunk:
    # Held, not just its id, so that a new object at a reused address cannot match.
    records: Snapshot
    up: bool
    lines: Lines
    age: str


class Chunks:
    """The chunk of every customer, kept while its part's records stay the same object."""

    def __init__(self, config: MetricsConfig) -> None:
        self._config = config
        self._chunks: dict[tuple[str, str, bool], _Chunk] = {}
        # How many chunks were encoded, for tests and benches.
        self.encoded = 0

    def __len__(self) -> int:
        return len(self._chunks)

    def customer(self, source: str, part: Part, *, openmetrics: bool) -> _Chunk:
        key = (source, part.customer_id, openmetrics)
        up = part.error is None
        chunk = self._chunks.get(key)
        if chunk is None or chunk.records is not part.records or chunk.up != up:
            rows = Rows()
            part_rows(rows, source, part, per_seat=self._config.per_seat_series)
            rows.add(_AGE, 0, source=source, customer_id=part.customer_id)
            lines = encode_lines(rows, openmetrics=openmetrics)
            age = lines.pop(_AGE).decode()
            chunk = _Chunk(part.records, up, lines, age[: age.rindex(" ") + 1])
            self._chunks[key] = chunk
            self.encoded += 1
        return chunk

    def retain(self, states: Iterable[SourceState]) -> None:
        """Drop the chunks of parts that went away or changed, in either format."""
        current = {(s.name, p.customer_id): p for s in states for p in s.parts.values()}
        for key, chunk in list(self._chunks.items()):
            part = current.get(key[:2])
            if part is None or part.records is not chunk.records:
                del self._chunks[key]


@dataclass(frozen=True, slots=True)
class Assembled:
    body: bytes
    ages: Ages = ()


def assemble(
    states: Sequence[SourceState], chunks: Chunks, config: MetricsConfig, *, openmetrics: bool
) -> Assembled:
    """The static body: each family's header once, then its lines from every chunk in
    (source, customer_id) order. A source's own chunk (its aggregates, and its per-seat series
    when capped) comes before its customers'; no family has lines in both."""
    pieces: defaultdict[MetricDef, list[bytes]] = defaultdict(list)
    ages: list[tuple[str, float]] = []

    def take(lines: Lines, skip: frozenset[MetricDef] = frozenset()) -> None:
        for metric, data in lines.items():
            if metric not in skip:
                pieces[metric].append(data)

    rows = Rows()
    exporter_rows(rows)
    take(encode_lines(rows, openmetrics=openmetrics))
    for state in sorted(states, key=lambda s: s.name):
        rows = Rows()
        source_rows(rows, state, config)
        take(encode_lines(rows, openmetrics=openmetrics))
        skip = PER_SEAT if capped(state, config) else frozenset()
        for part in sorted(state.parts.values(), key=lambda p: p.customer_id):
            chunk = chunks.customer(state.name, part, openmetrics=openmetrics)
            take(chunk.lines, skip)
            ages.append((chunk.age, part.oldest))
    return Assembled(_join(pieces, openmetrics), tuple(ages))


def _join(pieces: Mapping[MetricDef, Iterable[bytes]], openmetrics: bool) -> bytes:
    return b"".join(
        header(metric, openmetrics) + b"".join(pieces[metric])
        for metric in sorted(pieces, key=lambda d: d.name)
    )


def tail(states: Sequence[SourceState], ages: Ages, now: float, *, openmetrics: bool) -> bytes:
    """``render.render_dynamic``, given the ages of the static body assembled for ``states``."""
    rows = Rows()
    for state in states:
        source_dynamic_rows(rows, state, now)
    encoded = encode_lines(rows, openmetrics=openmetrics)
    pieces = {metric: [lines] for metric, lines in encoded.items()}
    if ages:
        values = (_value(max(now - oldest, 0.0)) for _, oldest in ages)
        samples = "".join(f"{age}{value}\n" for (age, _), value in zip(ages, values, strict=True))
        pieces[_AGE] = [samples.encode()]
    return _join(pieces, openmetrics)

"""Exposition bodies, rendered once per change of the sources' states and served many times.

The clock-dependent lines (see ``render.render_dynamic``) are appended per scrape. For gzip, the
cached part is kept as a sync-flushed raw deflate stream, so a scrape only compresses its few
dynamic lines and extends the CRC instead of compressing the whole body again.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cachetools import LRUCache

from exporter.config import MetricsConfig
from exporter.refresh import SourceState
from exporter.render import OPENMETRICS_EOF, render_dynamic, render_static

TEXT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_LEVEL: Final = 6


@dataclass
class _Static:
    body: bytes
    _deflated: bytes | None = field(default=None, repr=False)

    def deflated(self) -> bytes:
        if self._deflated is None:
            compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            self._deflated = compressor.compress(self.body) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return self._deflated


def gzip_join(static: _Static, tail: bytes) -> bytes:
    """A single gzip member holding ``static.body + tail``."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated_tail = compressor.compress(tail) + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(tail, zlib.crc32(static.body))
    size = (len(static.body) + len(tail)) & 0xFFFFFFFF
    return _GZIP_HEADER + static.deflated() + deflated_tail + struct.pack("<II", crc, size)


def wants_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in {"gzip", "x-gzip"}:
            continue
        q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


def wants_openmetrics(accept: str | None) -> bool:
    return "application/openmetrics-text" in (accept or "")


@dataclass(frozen=True, slots=True)
class Body:
    content: bytes
    content_type: str
    gzipped: bool


class Exposition:
    def __init__(self, config: MetricsConfig) -> None:
        self._config = config
        self._static: LRUCache[tuple[tuple[int, ...], bool], _Static] = LRUCache(maxsize=4)
        self.renders = 0

    def _static_part(self, states: Sequence[SourceState], openmetrics: bool) -> _Static:
        key = (tuple(s.generation for s in states), openmetrics)
        part = self._static.get(key)
        if part is None:
            part = _Static(render_static(states, self._config, openmetrics=openmetrics))
            self._static[key] = part
            self.renders += 1
        return part

    def body(
        self, states: Sequence[SourceState], now: float, *, openmetrics: bool, gzip: bool
    ) -> Body:
        static = self._static_part(states, openmetrics)
        tail = render_dynamic(states, now, openmetrics=openmetrics)
        if openmetrics:
            tail += OPENMETRICS_EOF
        content_type = OPENMETRICS_TYPE if openmetrics else TEXT_TYPE
        if gzip:
            return Body(gzip_join(static, tail), content_type, True)
        return Body(static.body + tail, content_type, False)

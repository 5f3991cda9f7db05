"""Exposition bodies: the static part assembled once per change of the sources' parts and
served many times, the dynamic tail rendered on every scrape.

The static part is assembled from per-customer chunks (``exporter.chunks``) kept beside it, so
a change re-encodes only the customers that changed. The live lines (see
``render.render_dynamic``) are appended per scrape. For gzip, the static part is kept as a
sync-flushed raw deflate stream with its CRC, so a scrape only compresses the tail and extends
the CRC instead of compressing, or even reading, the whole body again.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cachetools import LRUCache

from exporter import negotiation
from exporter.chunks import Ages, Chunks, assemble, tail
from exporter.config import MetricsConfig
from exporter.refresh import SourceState
from exporter.render import OPENMETRICS_EOF

TEXT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_LEVEL: Final = 6


@dataclass
class _Static:
    body: bytes
    ages: Ages = ()
    # Compressed on the first gzip scrape, then kept.
    _deflated: tuple[bytes, int] | None = field(default=None, repr=False)

    def deflated(self) -> tuple[bytes, int]:
        """The body as a sync-flushed raw deflate stream, and its CRC-32."""
        if self._deflated is None:
            compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            stream = compressor.compress(self.body) + compressor.flush(zlib.Z_SYNC_FLUSH)
            self._deflated = stream, zlib.crc32(self.body)
        return self._deflated


def gzip_join(static: _Static, live: bytes) -> bytes:
    """A single gzip member holding ``static.body + live``."""
    stream, crc = static.deflated()
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated_live = compressor.compress(live) + compressor.flush(zlib.Z_FINISH)
    size = (len(static.body) + len(live)) & 0xFFFFFFFF
    return _GZIP_HEADER + stream + deflated_live + struct.pack("<II", zlib.crc32(live, crc), size)


def wants_gzip(accept_encoding: str | None) -> bool:
    return negotiation.wants_gzip(accept_encoding)


def wants_openmetrics(accept: str | None) -> bool:
    return negotiation.wants_openmetrics(accept)


_Key = tuple[tuple[tuple[int, bool], ...], bool]


@dataclass(frozen=True, slots=True)
class Body:
    content: bytes
    content_type: str
    gzipped: bool


class Exposition:
    def __init__(self, config: MetricsConfig) -> None:
        self._config = config
        # Generations only grow: the current one in each format is all that is served again.
        self._static: LRUCache[_Key, _Static] = LRUCache(maxsize=2)
        self.chunks = Chunks(config)
        self.renders = 0

    def _static_part(self, states: Sequence[SourceState], openmetrics: bool) -> _Static:
        # The static body is a function of each source's parts and whether it has listed.
        key = (tuple((s.generation, s.listed) for s in states), openmetrics)
        part = self._static.get(key)
        if part is None:
            assembled = assemble(states, self.chunks, self._config, openmetrics=openmetrics)
            self.chunks.retain(states)
            part = _Static(assembled.body, assembled.ages)
            self._static[key] = part
            self.renders += 1
        return part

    def reset(self, config: MetricsConfig) -> None:
        """Forget every assembled body: after a config reload a source's new runner counts its
        generations afresh, so an old key could name another body. The chunks are kept (each is
        checked against its records' identity) unless the metrics settings changed."""
        self._static.clear()
        if config != self._config:
            self._config = config
            self.chunks = Chunks(config)

    def body(
        self,
        states: Sequence[SourceState],
        now: float,
        *,
        openmetrics: bool,
        gzip: bool,
        extra: bytes = b"",
    ) -> Body:
        """The document for ``states``; ``extra``: encoded families of the exporter's own, read
        live, appended to the tail."""
        static = self._static_part(states, openmetrics)
        live = tail(states, static.ages, now, openmetrics=openmetrics) + extra
        if openmetrics:
            live += OPENMETRICS_EOF
        content_type = OPENMETRICS_TYPE if openmetrics else TEXT_TYPE
        if gzip:
            return Body(gzip_join(static, live), content_type, True)
        return Body(static.body + live, content_type, False)

"""One module per vendor API; this registry maps a config ``type`` to its source class."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from exporter.cache import Source
from exporter.config import SourceConfig
from exporter.sources.backupify import BackupifySource
from exporter.sources.cloudally import CloudAllySource
from exporter.sources.datto import DattoSource

REGISTRY: Final[Mapping[str, Callable[..., Source]]] = {
    "datto": DattoSource,
    "backupify": BackupifySource,
    "cloudally": CloudAllySource,
}


def build_source(config: SourceConfig, **options: Any) -> Source:
    """Construct a source; this never calls the vendor."""
    return REGISTRY[config.type](config, **options)

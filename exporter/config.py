"""The configuration file schema, its environment overrides and its error messages.

Layering, lowest to highest: the YAML file, then ``SAAS_BACKUP_<SECTION>__<KEY>`` environment
variables (pydantic-settings), then ``SAAS_BACKUP_SOURCES__<NAME>__<KEY>`` for one source,
matched by its ``name``. Every secret may instead be given as ``<key>_file``.

Errors name the key and the problem, never the value (see ``exporter.config_errors``): any
input may be a secret.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import operator
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, cast

from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from exporter import vendors

# Defined beside the messages, which the settings modules use too; callers import it from here.
from exporter.config_errors import ConfigError as ConfigError  # noqa: PLC0414
from exporter.config_errors import (
    Vocabulary,
    parse_yaml,
    setting_names,
    unknown_names,
    validation_problems,
    without_secrets,
)
from exporter.settings import PositiveSeconds, SourceBase, Strict

logger = logging.getLogger(__name__)

ENV_PREFIX: Final = "SAAS_BACKUP_"
_SOURCE_ENV = re.compile(rf"^{ENV_PREFIX}SOURCES__(?P<source>[^_].*?)__(?P<key>[A-Z0-9_]+)$")


def known_endpoints() -> list[str]:
    """Every endpoint of every registered vendor: what `cache.endpoints` may set."""
    return sorted({e for vendor in vendors.all() for e in vendor.endpoints})


class CacheConfig(Strict):
    ttl_seconds: PositiveSeconds = 300.0
    endpoints: dict[str, PositiveSeconds] = Field(default_factory=dict)
    max_age_seconds: PositiveSeconds = 86400.0
    # Refresh every source once at start-up so /-/ready means something before the first scrape.
    warm_up: bool = True
    # Where the last good data is kept across restarts (SQLite); none: a restart starts cold.
    state_file: Path | None = None

    @field_validator("endpoints")
    @classmethod
    def _known_endpoints(cls, value: dict[str, float]) -> dict[str, float]:
        problem = unknown_names(value, known_endpoints(), "endpoint")
        if problem:
            raise ValueError(problem)
        return value


class ScrapeConfig(Strict):
    # Used when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds header.
    default_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    timeout_offset_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.5
    # A hard ceiling on how long a scrape waits for a refresh, whatever the header says.
    max_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    def deadline(self, header: str | None) -> float:
        """Seconds a scrape may wait: the header's timeout when it is a plain number above 0
        (else the default), less the offset, capped."""
        timeout = self.default_timeout_seconds
        if header:
            plain = re.fullmatch(
                r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", header.strip()
            )
            given = float(header) if plain else 0.0
            # NaN or infinity would reach asyncio's timers, which order them by comparison.
            if 0 < given < float("inf"):
                timeout = given
            else:
                logger.debug("msg=%s value=%s", "ignoring bad scrape timeout header", header[:32])
        # Finite even without max_timeout_seconds: no scrape is worth waiting an hour for.
        ceiling = self.max_timeout_seconds or 3600.0
        return max(min(timeout - self.timeout_offset_seconds, ceiling), 0.0)


class MetricsConfig(Strict):
    per_seat_series: bool = True
    # Per source. When exceeded, the seats with the oldest backups are kept.
    max_seat_series: Annotated[int, Field(ge=0)] = 50_000


class WebConfig(Strict):
    # Requests in flight; beyond it a request gets a 503, except /-/healthy and /-/ready.
    max_concurrency: Annotated[int, Field(ge=1)] = 64
    # Open connections. At the cap a new one closes the oldest idle one rather than being
    # refused, so idle clients cannot lock out real ones. Below the usual 1024 open files.
    max_connections: Annotated[int, Field(ge=1)] = 512
    # A connection that has not sent a whole request header this long after connecting, or
    # after the first byte of its next request, is closed (slowloris).
    header_read_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0


class _EnvWithoutSources(EnvSettingsSource):
    """pydantic-settings cannot address list items; those overrides are merged by name instead
    (``_apply_source_env``)."""

    _undecoded: tuple[str, str] | None = None

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        if field_name == "sources":
            return None
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError:
            # pydantic-settings' own error names neither the variable nor the problem, and it
            # chains the JSON decoder's.
            var = self._variable(field_name)
            raise ConfigError([f"{var}: not valid JSON, which this setting needs"]) from None

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)  # type: ignore[arg-type]
        except ValueError:
            self._undecoded = (field_name, value)
            raise

    def _variable(self, field_name: str) -> str:
        """The variable whose value did not decode: the last one that failed (pydantic-settings
        gives up on some failures only)."""
        top = f"{self.env_prefix}{field_name}".lower()
        if self._undecoded is not None:
            key, value = self._undecoded
            for name, given in self.env_vars.items():
                if given == value and (name == top or name.lower().endswith(f"__{key}".lower())):
                    return name.upper()
        return f"{top.upper()} or a {top.upper()}__ variable"


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    cache: CacheConfig = CacheConfig()
    scrape: ScrapeConfig = ScrapeConfig()
    metrics: MetricsConfig = MetricsConfig()
    web: WebConfig = WebConfig()
    # Each entry is validated as its vendor's settings: see `config_model`.
    sources: Annotated[list[SourceBase], Field(min_length=1)]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_EnvWithoutSources(settings_cls), init_settings)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"duplicate source name {source.name!r}")
            seen.add(source.name)
        return self

    def secrets(self) -> list[str]:
        return [s.get_secret_value() for src in self.sources for s in src.secrets()]


@functools.cache
def _config_model(names: tuple[str, ...]) -> type[Config]:
    settings = [vendors.get(name).settings for name in names]
    if len(settings) == 1:
        entry: Any = settings[0]
    else:
        entry = Annotated[functools.reduce(operator.or_, settings), Field(discriminator="vendor")]
    model = create_model(
        "Config",
        __base__=Config,
        sources=(Annotated[list[entry], Field(min_length=1)], ...),
    )
    return cast(type[Config], model)


def config_model() -> type[Config]:
    """``Config`` whose ``sources`` entries are a union of every registered vendor's settings,
    told apart by their ``type:``."""
    return _config_model(vendors.names())


@functools.cache
def _vocabulary(names: tuple[str, ...]) -> Vocabulary:
    known = setting_names(config_model()) | set(known_endpoints()) | set(names)
    return Vocabulary(known=known, tags=names, env_prefix=ENV_PREFIX)


def _apply_source_env(
    data: dict[str, Any], environ: Mapping[str, str], env_keys: dict[tuple[int, str], str]
) -> list[str]:
    """Merges the ``SOURCES__<NAME>__<KEY>`` variables into ``data``, noting in ``env_keys``
    which (source index, key) each one set."""
    problems = []
    if f"{ENV_PREFIX}SOURCES" in environ:
        problems.append(
            f"{ENV_PREFIX}SOURCES: sources cannot be set as a whole from the environment; "
            f"set one key with {ENV_PREFIX}SOURCES__<NAME>__<KEY>"
        )
    sources = data.get("sources")
    by_name: dict[str, tuple[int, dict[str, Any]]] = {}
    if isinstance(sources, list):
        for index, entry in enumerate(sources):
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                by_name[entry["name"].upper().replace("-", "_")] = (index, entry)
    for var in sorted(environ):
        match = _SOURCE_ENV.match(var)
        if not match:
            continue
        found = by_name.get(match["source"])
        if found is None:
            problems.append(f"{var}: no source with that name in the config file")
            continue
        index, entry = found
        key = match["key"].lower()
        entry[key] = environ[var]
        env_keys[index, key] = var
    return problems


def _secret_inputs(data: Mapping[str, Any]) -> list[str]:
    """Every text given for a secret setting or its file, wherever validation failed."""
    keys = {k for v in vendors.all() for s in v.settings.SECRETS for k in (s, f"{s}_file")}
    sources = data.get("sources")
    entries = [e for e in sources if isinstance(e, dict)] if isinstance(sources, list) else []
    return [e[k] for e in entries for k in keys if isinstance(e.get(k), str)]


def _read_yaml(path: Path) -> dict[str, Any]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read: {exc.strerror or type(exc).__name__}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not UTF-8 text"]) from None
    data = parse_yaml(text, where)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: the top level must be a mapping of settings"])
    return data


def load_config(path: Path) -> Config:
    """Read, merge with the environment and validate; raise ConfigError listing every problem."""
    return build_config(_read_yaml(path))


def build_config(data: dict[str, Any]) -> Config:
    env_keys: dict[tuple[int, str], str] = {}
    problems = _apply_source_env(data, os.environ, env_keys)
    words = dataclasses.replace(_vocabulary(vendors.names()), environ=os.environ, env_keys=env_keys)
    # Keyword arguments must be text; a YAML key may be a number.
    for position, key in enumerate(data, 1):
        if not isinstance(key, str):
            problems.append(f"<key #{position}>: a key must be text")
    settings = {k: v for k, v in data.items() if isinstance(k, str)}
    try:
        config = config_model()(**settings)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, data, words))
    except ConfigError as exc:
        problems.extend(exc.problems)
    except SettingsError:
        problems.append(f"{ENV_PREFIX}*: an environment variable cannot be read")
    if problems:
        raise ConfigError(without_secrets(problems, _secret_inputs(data)))
    return config

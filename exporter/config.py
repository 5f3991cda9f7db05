"""The configuration file schema, its environment overrides and its error messages.

Layering, lowest to highest: the YAML file, then ``SAAS_BACKUP_<SECTION>__<KEY>`` environment
variables (pydantic-settings), then ``SAAS_BACKUP_SOURCES__<NAME>__<KEY>`` for one source,
matched by its ``name``. Every secret may instead be given as ``<key>_file``.

Validation errors are rebuilt from pydantic's structured errors without their input values:
pydantic echoes inputs by default, and an input may be a secret.
"""

from __future__ import annotations

import functools
import logging
import operator
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, cast

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from exporter import vendors
from exporter.settings import PositiveSeconds, SourceBase, Strict

logger = logging.getLogger(__name__)

ENV_PREFIX: Final = "SAAS_BACKUP_"
_SOURCE_ENV = re.compile(rf"^{ENV_PREFIX}SOURCES__(?P<source>[^_].*?)__(?P<key>[A-Z0-9_]+)$")


def known_endpoints() -> list[str]:
    """Every endpoint of every registered vendor: what `cache.endpoints` may set."""
    return sorted({e for vendor in vendors.all() for e in vendor.endpoints})


class ConfigError(Exception):
    """Every problem found in a config, each as ``key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


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
        known = known_endpoints()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown endpoint {', '.join(unknown)} (known: {', '.join(known)})")
        return value


class ScrapeConfig(Strict):
    # Used when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds header.
    default_timeout_seconds: PositiveSeconds = 10.0
    timeout_offset_seconds: Annotated[float, Field(ge=0)] = 0.5
    # A hard ceiling on how long a scrape waits for a refresh, whatever the header says.
    max_timeout_seconds: PositiveSeconds | None = None

    def deadline(self, header: str | None) -> float:
        timeout = self.default_timeout_seconds
        if header:
            try:
                timeout = float(header)
            except ValueError:
                logger.debug("msg=%s value=%s", "ignoring bad scrape timeout header", header[:32])
        budget = timeout - self.timeout_offset_seconds
        if self.max_timeout_seconds is not None:
            budget = min(budget, self.max_timeout_seconds)
        return max(budget, 0.0)


class MetricsConfig(Strict):
    per_seat_series: bool = True
    # Per source. When exceeded, the seats with the oldest backups are kept.
    max_seat_series: Annotated[int, Field(ge=0)] = 50_000


class WebConfig(Strict):
    max_concurrency: Annotated[int, Field(ge=1)] = 64


class _EnvWithoutSources(EnvSettingsSource):
    """pydantic-settings cannot address list items; those overrides are merged by name instead."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        data.pop("sources", None)
        return data


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


_MESSAGES: Final[Mapping[str, str]] = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "url_parsing": "not a URL",
    "url_scheme": "not an http(s) URL",
    "url_type": "not a URL",
    "string_pattern_mismatch": "must start with a letter and hold only letters, digits, _ or -",
}


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for index, part in enumerate(loc):
        # pydantic puts the union tag into the location: sources.0.datto.base_url
        if index == 2 and loc[0] == "sources" and part in vendors.names():
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "config"


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            kinds = ", ".join(vendors.names())
            word = "unknown type" if err["type"] == "union_tag_invalid" else "required"
            problems.append(f"{_location(err['loc'])}.type: {word} (one of: {kinds})")
            continue
        message = _MESSAGES.get(err["type"], err["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(f"{_location(err['loc'])}: {message}")
    return problems


def _apply_source_env(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    problems = []
    sources = data.get("sources")
    by_name: dict[str, dict[str, Any]] = {}
    if isinstance(sources, list):
        for entry in sources:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                by_name[entry["name"].upper().replace("-", "_")] = entry
    for var in sorted(environ):
        match = _SOURCE_ENV.match(var)
        if not match:
            continue
        entry = by_name.get(match["source"])
        if entry is None:
            problems.append(f"{var}: no source with that name in the config file")
            continue
        entry[match["key"].lower()] = environ[var]
    return problems


def _read_yaml(path: Path) -> dict[str, Any]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read: {exc.strerror or type(exc).__name__}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # The default rendering quotes the offending line, which may hold a secret.
        mark = exc.problem_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError([f"{where}{at}: invalid YAML: {exc.problem or 'syntax error'}"]) from None
    except yaml.YAMLError:
        raise ConfigError([f"{where}: invalid YAML"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: the top level must be a mapping of settings"])
    return data


def load_config(path: Path) -> Config:
    """Read, merge with the environment and validate; raise ConfigError listing every problem."""
    return build_config(_read_yaml(path))


def build_config(data: dict[str, Any]) -> Config:
    problems = _apply_source_env(data, os.environ)
    try:
        config = config_model()(**data)
    except ValidationError as exc:
        problems.extend(_problems(exc))
    if problems:
        raise ConfigError(problems)
    return config

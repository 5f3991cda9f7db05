"""The configuration file schema, its environment overrides and its error messages.

Layering, lowest to highest: the YAML file, then ``SAAS_BACKUP_<SECTION>__<KEY>`` environment
variables (pydantic-settings), then ``SAAS_BACKUP_SOURCES__<NAME>__<KEY>`` for one source,
matched by its ``name``. Every secret may instead be given as ``<key>_file``.

Validation errors are rebuilt from pydantic's structured errors without their input values:
pydantic echoes inputs by default, and an input may be a secret.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

logger = logging.getLogger(__name__)

ENV_PREFIX: Final = "SAAS_BACKUP_"
_SOURCE_ENV = re.compile(rf"^{ENV_PREFIX}SOURCES__(?P<source>[^_].*?)__(?P<key>[A-Z0-9_]+)$")

# Per vendor type, the endpoints whose TTL `cache.endpoints` may set.
ENDPOINTS: Final[Mapping[str, tuple[str, ...]]] = {
    "datto": ("domains", "seats", "applications"),
    "backupify": ("definitions", "instances", "active_backup", "backups"),
    "cloudally": ("backup_tasks", "partner_tasks", "restore_status"),
}

PositiveSeconds = Annotated[float, Field(gt=0)]


class ConfigError(Exception):
    """Every problem found in a config, each as ``key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CacheConfig(_Strict):
    ttl_seconds: PositiveSeconds = 300.0
    endpoints: dict[str, PositiveSeconds] = Field(default_factory=dict)
    max_age_seconds: PositiveSeconds = 86400.0
    # Refresh every source once at start-up so /-/ready means something before the first scrape.
    warm_up: bool = True

    @field_validator("endpoints")
    @classmethod
    def _known_endpoints(cls, value: dict[str, float]) -> dict[str, float]:
        known = sorted({e for endpoints in ENDPOINTS.values() for e in endpoints})
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown endpoint {', '.join(unknown)} (known: {', '.join(known)})")
        return value

    def ttl(self, endpoint: str) -> float:
        return self.endpoints.get(endpoint, self.ttl_seconds)


class ScrapeConfig(_Strict):
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


class MetricsConfig(_Strict):
    per_seat_series: bool = True
    # Per source. When exceeded, the seats with the oldest backups are kept.
    max_seat_series: Annotated[int, Field(ge=0)] = 50_000


class WebConfig(_Strict):
    max_concurrency: Annotated[int, Field(ge=1)] = 64


class RetryConfig(_Strict):
    attempts: Annotated[int, Field(ge=1, le=20)] = 4
    initial_backoff_seconds: Annotated[float, Field(ge=0)] = 1.0
    max_backoff_seconds: Annotated[float, Field(ge=0)] = 30.0
    jitter_seconds: Annotated[float, Field(ge=0)] = 1.0
    # A Retry-After longer than this fails the call instead of stalling the refresh.
    max_retry_after_seconds: Annotated[float, Field(ge=0)] = 300.0


class SourceBase(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")]
    base_url: HttpUrl
    connect_timeout_seconds: PositiveSeconds = 10.0
    # Datto's /seats answers in 38-60 s for mid-sized customers; public clients use 90 s.
    timeout_seconds: PositiveSeconds = 90.0
    refresh_timeout_seconds: PositiveSeconds = 900.0
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    retry: RetryConfig = RetryConfig()

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: HttpUrl) -> HttpUrl:
        if value.username or value.password:
            raise ValueError("must not contain credentials; use the source's key settings")
        return value

    # Secret settings, each also accepted as `<name>_file`; the required ones must be set.
    SECRETS: ClassVar[tuple[str, ...]] = ()
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Self:
        for name in self.SECRETS:
            value, path = getattr(self, name), getattr(self, f"{name}_file")
            if value is not None and path is not None:
                raise ValueError(f"{name} and {name}_file are mutually exclusive")
            if path is not None:
                object.__setattr__(self, name, _read_secret_file(path))
            elif value is not None and not value.get_secret_value():
                object.__setattr__(self, name, None)
            if name in self.REQUIRED_SECRETS and getattr(self, name) is None:
                raise ValueError(f"{name} (or {name}_file) is required")
        return self

    def secrets(self) -> list[SecretStr]:
        return [v for v in self.__dict__.values() if isinstance(v, SecretStr)]


def _read_secret_file(path: Path) -> SecretStr:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: not UTF-8 text") from None
    value = text.strip()
    if not value:
        raise ValueError(f"{path} is empty")
    return SecretStr(value)


class DattoSourceConfig(SourceBase):
    SECRETS = ("private_key",)
    REQUIRED_SECRETS = ("private_key",)

    type: Literal["datto"]
    base_url: HttpUrl = HttpUrl("https://api.datto.com")
    public_key: Annotated[str, Field(min_length=1)]
    private_key: SecretStr | None = None
    private_key_file: Path | None = None
    applications_days: Annotated[int, Field(ge=1, le=30)] = 10
    applications_page_size: Annotated[int, Field(ge=1, le=1000)] = 100


class BackupifySourceConfig(SourceBase):
    SECRETS = ("client_secret",)
    REQUIRED_SECRETS = ("client_secret",)

    type: Literal["backupify"]
    base_url: HttpUrl = HttpUrl("https://api.backupify.com")
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    scope: str | None = None
    # Default: every backup definition the credentials can see.
    backup_definition_ids: list[str] | None = None
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 50
    token_margin_seconds: Annotated[float, Field(ge=0)] = 60.0


class CloudAllySourceConfig(SourceBase):
    SECRETS = ("client_secret", "password")
    REQUIRED_SECRETS = ("client_secret",)

    type: Literal["cloudally"]
    base_url: HttpUrl = HttpUrl("https://api.cloudally.com")
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    # "body": the spec's {clientId, clientSecret}; "headers": client-id/client-secret headers
    # with an optional {email, password} body, as a live client does.
    auth_style: Literal["body", "headers"] = "body"
    email: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    page_size: Annotated[int, Field(ge=1, le=1000)] = 100
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 50
    restore_window_seconds: PositiveSeconds = 7 * 86400.0
    token_margin_seconds: Annotated[float, Field(ge=0)] = 60.0


SourceConfig = Annotated[
    DattoSourceConfig | BackupifySourceConfig | CloudAllySourceConfig,
    Field(discriminator="type"),
]


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
    sources: Annotated[list[SourceConfig], Field(min_length=1)]

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
        if index == 2 and loc[0] == "sources" and part in ENDPOINTS:
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
            kinds = ", ".join(ENDPOINTS)
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
        config = Config(**data)
    except ValidationError as exc:
        problems.extend(_problems(exc))
    if problems:
        raise ConfigError(problems)
    return config

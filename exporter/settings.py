"""What every source's config section has in common; each vendor's section extends ``SourceBase``.

Secrets are ``SecretStr`` and each may instead be given as ``<name>_file``; ``SourceBase`` reads
those files during validation, so a loaded config holds every secret it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)

PositiveSeconds = Annotated[float, Field(gt=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(Strict):
    attempts: Annotated[int, Field(ge=1, le=20)] = 4
    initial_backoff_seconds: Annotated[float, Field(ge=0)] = 1.0
    max_backoff_seconds: Annotated[float, Field(ge=0)] = 30.0
    jitter_seconds: Annotated[float, Field(ge=0)] = 1.0
    # A Retry-After longer than this fails the call instead of stalling the refresh.
    max_retry_after_seconds: Annotated[float, Field(ge=0)] = 300.0


class BudgetConfig(Strict):
    """How a source paces its calls against the vendor's budget."""

    # Used only while the vendor reports no budget of its own; None: no limit.
    calls_per_hour: Annotated[int, Field(ge=1)] | None = None
    # Left unspent in every window, for the other clients of the same key and for the calls
    # whose cost is not known yet.
    reserve_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # 0.1: enough to read the customer list and the first customers at once after a start or
    # a new window, small enough that the rest of the window is still paced evenly and a
    # restart loop cannot spend the budget in bursts.
    burst_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1


class SourceBase(Strict):
    # The config key stays `type:` for compatibility; the code calls it the vendor.
    vendor: str = Field(alias="type")
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")]
    base_url: HttpUrl
    connect_timeout_seconds: PositiveSeconds = 10.0
    # Datto's /seats answers in 38-60 s for mid-sized customers; public clients use 90 s.
    timeout_seconds: PositiveSeconds = 90.0
    # How long one crawl may run; a crawl cut off keeps what it read and the next one resumes.
    refresh_timeout_seconds: PositiveSeconds = 900.0
    # Customers read at once, and vendor calls in flight at once.
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    # A running crawl that publishes nothing for this long marks the source down. Longer than
    # one customer's slowest read with its retries (Datto's /seats: 60 s a call).
    stall_seconds: PositiveSeconds = 600.0
    retry: RetryConfig = RetryConfig()
    budget: BudgetConfig = BudgetConfig()

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

    def secret(self, name: str) -> str:
        """A secret's value; only for the request that sends it."""
        value = getattr(self, name)
        if not isinstance(value, SecretStr):
            raise ValueError(f"{name} is not set")
        return value.get_secret_value()


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

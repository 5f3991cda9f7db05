"""What every source's config section has in common; each vendor's section extends ``SourceBase``.

Secrets are ``SecretStr`` and each may instead be given as ``<name>_file``; ``SourceBase`` reads
those files during validation, so a loaded config holds every secret it needs.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Annotated, ClassVar, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)

from exporter.config_errors import setting_error, unknown_names

PositiveSeconds = Annotated[float, Field(gt=0)]
# A secret file holds one key: more is a mistake (a certificate bundle, a log, /dev/zero).
MAX_SECRET_FILE_BYTES: Final = 64 * 1024
BodyBytes = Annotated[int, Field(ge=1024)]
MIB = 1024 * 1024


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


class CustomerPattern(Strict):
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            # The position, never the pattern: config errors do not quote values.
            raise ValueError(
                f"not a valid regular expression ({exc.msg} at position {exc.pos})"
            ) from None
        return value


class CustomerFilter(Strict):
    """Customers to crawl and export: ids or display names, exact or `{regex: ...}` (anchored).
    Empty include: every customer; exclude wins. See exporter/filters.py."""

    include: tuple[str | CustomerPattern, ...] = ()
    exclude: tuple[str | CustomerPattern, ...] = ()


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
    # The most one vendor answer may hold (decompressed); more fails that call, counted as
    # code="too_large". Generous: a vendor's longest list (10,000 seats) is a few MiB.
    max_body_bytes: BodyBytes = 64 * MIB
    # Per endpoint (the names `cache.endpoints` takes), over max_body_bytes.
    max_body_bytes_by_endpoint: dict[str, BodyBytes] = Field(default_factory=dict)
    # How long one call may take in all: the connect, the headers and the whole body. Default:
    # connect_timeout_seconds + timeout_seconds (which bound each step, not the sum of reads).
    request_deadline_seconds: PositiveSeconds | None = None
    # Test and internal tenants left out: not crawled (no API spend) and not exported.
    customers: CustomerFilter = CustomerFilter()

    @property
    def deadline_seconds(self) -> float:
        if self.request_deadline_seconds is not None:
            return self.request_deadline_seconds
        return self.connect_timeout_seconds + self.timeout_seconds

    # The vendor's endpoints, which max_body_bytes_by_endpoint may name (none: any name).
    ENDPOINTS: ClassVar[frozenset[str]] = frozenset()

    @field_validator("max_body_bytes_by_endpoint")
    @classmethod
    def _known_endpoints(cls, value: dict[str, int]) -> dict[str, int]:
        problem = unknown_names(value, cls.ENDPOINTS, "endpoint") if cls.ENDPOINTS else None
        if problem:
            raise ValueError(problem)
        return value

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
            secret = None
            if path is not None:
                secret = _checked(f"{name}_file", _read_secret_file(f"{name}_file", path))
            elif value is not None and value.get_secret_value().strip():
                secret = _checked(name, value.get_secret_value())
            object.__setattr__(self, name, secret)
            if name in self.REQUIRED_SECRETS and secret is None:
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


# Neither the path nor the content is ever quoted: a secret pasted under `<name>_file` is the
# "path", and the key names which setting to look at.
def _read_secret_file(key: str, path: Path) -> str:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        problem = f"cannot read the file ({exc.strerror or type(exc).__name__})"
        raise setting_error(key, problem) from None
    except ValueError:
        # A NUL or an unencodable character in the path.
        raise setting_error(key, "not a usable file path") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        limit = MAX_SECRET_FILE_BYTES // 1024
        raise setting_error(
            key, f"the file is larger than {limit} KiB; it must hold the secret only"
        )
    try:
        # utf-8-sig: editors on Windows start a file with a byte order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise setting_error(key, "the file is not UTF-8 text") from None
    if not text.strip():
        raise setting_error(key, "the file is empty")
    return text


def _checked(key: str, text: str) -> SecretStr:
    value = text.strip()
    # A line break, NUL or other control character inside a secret is a paste or file accident
    # (two keys in one file, a binary file), and in a header the HTTP library would refuse it
    # only at request time, quoting the value.
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise setting_error(
            key, "holds a line break, NUL or other control character; a secret is one line of text"
        )
    return SecretStr(value)

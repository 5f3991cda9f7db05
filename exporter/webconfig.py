"""The web config file (``--web.config.file``): prometheus/exporter-toolkit's format and meaning,
validated whole, and re-read when it or a file it names changes.

Keys: ``tls_server_config`` (see ``webtls``), ``basic_auth_users`` (bcrypt hashes),
``http_server_config.headers`` (the toolkit's five), ``http_server_config.http2`` (``false`` only:
this server speaks HTTP/1.1) and ``rate_limit``. Anything else is refused.

No problem message quotes a value from the file: a value may be a secret (a hash, a key).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import Field, SecretStr, ValidationError

from exporter import logs
from exporter.config import ConfigError
from exporter.webtls import LiveContext, Section, TLSServerConfig, build_context, shown

logger = logging.getLogger(__name__)

# The toolkit's extraHTTPHeaders: the only headers it sets, with the values it allows.
HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_BCRYPT: Final = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
_DURATION: Final = re.compile(r"(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
}
_QUOTED: Final = re.compile(r"'[^']*'|\"[^\"]*\"")


class HTTPServerConfig(Section):
    http2: bool | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class RateLimitConfig(Section):
    interval: str = "0"
    burst: int = Field(default=0, ge=0)


class WebConfigFile(Section):
    tls_server_config: TLSServerConfig = Field(default_factory=TLSServerConfig)
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class WebConfig:
    """A loaded, valid web config."""

    path: Path
    tls: ssl.SSLContext | None
    # user -> bcrypt hash; the hashes are secrets too.
    users: Mapping[str, bytes] = field(repr=False)
    # Lower-case names, as ASGI sends them.
    headers: tuple[tuple[bytes, bytes], ...]
    # (seconds per request, burst), or None: no limit.
    rate_limit: tuple[float, int] | None
    # The files it names, watched with it.
    files: tuple[Path, ...]
    _secrets: tuple[str, ...] = field(repr=False, default=())

    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def describe(self) -> str:
        return ", ".join(
            [
                "TLS" if self.tls else "no TLS",
                f"basic auth: {len(self.users)} users" if self.users else "no basic auth",
                f"{len(self.headers)} response headers",
                "rate limited" if self.rate_limit else "no rate limit",
            ]
        )


class _Loader(yaml.SafeLoader):
    """Scalars stay text, as Go reads them into its string fields (``X-XSS-Protection: 1``);
    pydantic turns text into the booleans and numbers the schema asks for. Duplicate keys are
    refused, as Go's strict unmarshalling does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, "duplicate key", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_KEPT_TAGS: Final = ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag in _KEPT_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {path} ({exc.strerror or type(exc).__name__})"]) from None
    except UnicodeDecodeError:
        raise ConfigError(["not UTF-8 text"]) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as exc:
        # PyYAML's rendering quotes the offending line, and its problem the offending token.
        mark = exc.problem_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = _QUOTED.sub("…", exc.problem or "syntax error")
        raise ConfigError([f"{at}invalid YAML: {problem}"]) from None
    except yaml.YAMLError:
        raise ConfigError(["invalid YAML"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of settings"])
    return data


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{shown(part)}" if out else shown(part))
    return out or "web config"


def _schema_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        if err["type"] == "extra_forbidden":
            message = "unknown key (not in the exporter-toolkit web config format)"
        else:
            message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{_location(err['loc'])}: {message}")
    return problems


def _users(users: Mapping[str, SecretStr], problems: list[str]) -> dict[str, bytes]:
    out = {}
    for user, secret in users.items():
        hashed = secret.get_secret_value()
        where = f"basic_auth_users.{shown(user)}"
        if ":" in user:
            problems.append(f"{where}: a user name can not hold ':' (HTTP basic auth)")
        elif not _BCRYPT.fullmatch(hashed):
            problems.append(
                f"{where}: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31; "
                "e.g. from htpasswd -nBC 10 \"\" | tr -d ':\\n')"
            )
        else:
            out[user] = hashed.encode("ascii")
    return out


def _headers(http: HTTPServerConfig, problems: list[str]) -> tuple[tuple[bytes, bytes], ...]:
    if http.http2:
        problems.append(
            "http_server_config.http2: this server speaks HTTP/1.1 only; set false or remove it"
        )
    out = []
    for name, value in http.headers.items():
        where = f"http_server_config.headers.{shown(name)}"
        allowed = HEADERS.get(name)
        if allowed is None:
            problems.append(f"{where}: can not be configured (only: {', '.join(HEADERS)})")
        elif any(ord(c) < 32 or ord(c) == 127 for c in value):
            problems.append(f"{where}: a control character in the value")
        elif value and allowed and value not in allowed:
            problems.append(f"{where}: invalid value (one of: {', '.join(allowed)})")
        elif value:
            # Blank means unset, as the toolkit's documentation says.
            out.append((name.lower().encode("ascii"), value.encode("latin-1", "replace")))
    return tuple(out)


def go_duration(text: str) -> float | None:
    """Seconds in Go's ``time.ParseDuration`` syntax (``1s``, ``1m30s``, ``500ms``, ``0``)."""
    if text == "0":
        return 0.0
    if not text or _DURATION.sub("", text) != "":
        return None
    return sum(float(number) * _UNITS[unit] for number, _, unit in _DURATION.findall(text))


def _rate_limit(rate: RateLimitConfig, problems: list[str]) -> tuple[float, int] | None:
    seconds = go_duration(rate.interval)
    if seconds is None:
        problems.append("rate_limit.interval: not a duration (e.g. 1s, 500ms, 0 for no limit)")
        return None
    if seconds == 0:
        if "burst" in rate.model_fields_set and rate.burst:
            problems.append(
                "rate_limit.burst: set, but interval is 0 (no limit): it would do nothing"
            )
        return None
    return seconds, rate.burst


def load_web_config(path: Path) -> WebConfig:
    """Read and validate the whole file, and the files it names; raise ConfigError listing every
    problem."""
    try:
        model = WebConfigFile.model_validate(_read(path))
    except ValidationError as exc:
        raise ConfigError(_schema_problems(exc)) from None
    base = path.parent
    problems: list[str] = []
    context = build_context(model.tls_server_config, base, problems)
    users = _users(model.basic_auth_users, problems)
    headers = _headers(model.http_server_config, problems)
    rate = _rate_limit(model.rate_limit, problems)
    if problems:
        raise ConfigError(problems)
    inline_key = model.tls_server_config.key.get_secret_value()
    return WebConfig(
        path=path,
        tls=context,
        users=users,
        headers=headers,
        rate_limit=rate,
        files=tuple(model.tls_server_config.files(base)),
        _secrets=tuple(h.decode() for h in users.values()) + ((inline_key,) if inline_key else ()),
    )


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, ...] | None, ...]:
    out: list[tuple[int, ...] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev))
    return tuple(out)


class LiveWebConfig:
    """The web config in force. At most once per ``every`` seconds, on a request or a new
    connection, it looks at the file and the files it names; when one changed it re-reads them.
    A new file that is invalid is logged and the one in force stays."""

    def __init__(
        self,
        loaded: WebConfig,
        *,
        every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loaded = loaded
        self._every = every
        self._clock = clock
        self._checked = clock()
        self._seen = self._files_signature(loaded)
        self._last_problems: list[str] | None = None
        logs.redact.register(loaded.secrets())

    @staticmethod
    def _files_signature(web: WebConfig) -> tuple[tuple[int, ...] | None, ...]:
        return _signature((web.path, *web.files))

    @property
    def current(self) -> WebConfig:
        now = self._clock()
        if now - self._checked >= self._every:
            self._checked = now
            self._reload_if_changed()
        return self._loaded

    def ssl_context(self) -> ssl.SSLContext:
        """For the server: each new connection gets the context in force."""
        if self._loaded.tls is None:
            raise ValueError("the web config has no tls_server_config")
        context = LiveContext(ssl.PROTOCOL_TLS_SERVER)
        context.source = self._tls
        return context

    def _tls(self) -> ssl.SSLContext:
        tls = self.current.tls
        # A reload never turns TLS off (see _reload_if_changed).
        assert tls is not None
        return tls

    def load(self) -> WebConfig:
        """The file as it is now, checked against the one in force; raises ConfigError. For a
        reload of the whole config (``exporter.reload``), which then calls ``use``."""
        new = load_web_config(self._loaded.path)
        if (new.tls is None) != (self._loaded.tls is None):
            raise ConfigError(
                ["tls_server_config: TLS can not be turned on or off while running; restart"]
            )
        return new

    def use(self, new: WebConfig) -> None:
        """Put a loaded web config in force: new connections and requests get it."""
        logs.redact.register(new.secrets())
        self._loaded = new
        self._seen = self._files_signature(new)
        self._last_problems = None

    def _reload_if_changed(self) -> None:
        if self._files_signature(self._loaded) == self._seen:
            return
        path = self._loaded.path
        try:
            new = self.load()
        except ConfigError as exc:
            # Retried at each check until it loads; logged once per distinct set of problems.
            if exc.problems != self._last_problems:
                self._last_problems = exc.problems
                logger.error(
                    "msg=%s file=%s problems=%s",
                    "web config not reloaded; the one in force stays",
                    str(path),
                    "; ".join(exc.problems),
                )
            return
        self.use(new)
        logger.info("msg=%s file=%s config=%s", "web config reloaded", str(path), new.describe())

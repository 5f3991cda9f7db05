"""``tls_server_config`` of the web config file (prometheus/exporter-toolkit's format) as an
``ssl.SSLContext``: every setting is honoured or refused with the reason, never ignored.

Python's ``ssl`` cannot do everything Go's ``crypto/tls`` does; what it cannot honour is refused:
asking for a client certificate without verifying it (``RequestClientCert``,
``RequireAnyClientCert``), choosing TLS 1.3 cipher suites, more than one curve, and TLS 1.0/1.1
(OpenSSL 3 allows those only at security level 0, which would weaken every connection).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

logger = logging.getLogger(__name__)

WHERE: Final = "tls_server_config"

CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go asks for a certificate and takes it unverified; OpenSSL verifies whatever it asks for.
UNVERIFIED_CLIENT_AUTH: Final = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")

VERSIONS: Final = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
OLD_VERSIONS: Final = ("TLS10", "TLS11")

# Go's crypto/tls names (tls.CipherSuites(), TLS 1.0-1.2 ones) -> OpenSSL's.
CIPHERS: Final = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_CIPHERS: Final = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)
CURVES: Final = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}
# Settings that only tune TLS: set while TLS is off they would do nothing, so they are refused.
_TUNING: Final = (
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)


class Section(BaseModel):
    """A mapping of the web config: unknown keys refused; an empty value is the default, as Go
    reads ``key:`` with nothing after it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class TLSServerConfig(Section):
    cert: str = ""
    key: SecretStr = SecretStr("")
    client_ca: str = ""
    cert_file: str = ""
    key_file: str = ""
    client_auth_type: str = ""
    client_ca_file: str = ""
    client_allowed_sans: list[str] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: list[str] = []
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = []

    def enabled(self) -> bool:
        """The toolkit's ``IsEnabled``: any certificate, key, client CA or client auth setting."""
        return any(
            (
                self.cert,
                self.key.get_secret_value(),
                self.client_ca,
                self.cert_file,
                self.key_file,
                self.client_auth_type,
                self.client_ca_file,
            )
        )

    def files(self, base: Path) -> list[Path]:
        """The files it names, relative ones taken from the web config's folder as Go does."""
        named = (self.cert_file, self.key_file, self.client_ca_file)
        return [resolve(base, name) for name in named if name]


def shown(text: str | Path) -> str:
    """A name or path from the file as it may be quoted in a problem: not when it looks like a
    secret put in the wrong place (a bcrypt hash, PEM text, anything long or multi-line)."""
    value = str(text)
    if "$2" in value or "-----" in value or "\n" in value or len(value) > 256:
        return "<not shown: it looks like a secret>"
    return value


def resolve(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def build_context(tls: TLSServerConfig, base: Path, problems: list[str]) -> ssl.SSLContext | None:
    """The server context, or None when TLS is off; each problem found is appended."""
    if not tls.enabled():
        problems += [
            f"{WHERE}.{key}: set, but TLS is off (neither cert_file nor cert): it would do nothing"
            for key in _TUNING
            if key in tls.model_fields_set
        ]
        return None
    before = len(problems)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _versions(tls, context, problems)
    _ciphers(tls, context, problems)
    _curves(tls, context, problems)
    _client_auth(tls, base, context, problems)
    _certificate(tls, base, context, problems)
    context.set_alpn_protocols(["http/1.1"])
    return context if len(problems) == before else None


def _version(key: str, name: str, problems: list[str]) -> ssl.TLSVersion | None:
    if name in VERSIONS:
        return VERSIONS[name]
    if name in OLD_VERSIONS:
        problems.append(
            f"{WHERE}.{key}: TLS 1.0 and 1.1 are refused: OpenSSL 3 allows them only at security "
            "level 0, which would weaken every connection (use TLS12 or TLS13)"
        )
    else:
        problems.append(f"{WHERE}.{key}: unknown TLS version (one of: TLS12, TLS13)")
    return None


def _versions(tls: TLSServerConfig, context: ssl.SSLContext, problems: list[str]) -> None:
    low = _version("min_version", tls.min_version, problems)
    high = _version("max_version", tls.max_version, problems)
    if low is None or high is None:
        return
    if low > high:
        problems.append(f"{WHERE}.min_version: above max_version")
        return
    context.minimum_version = low
    context.maximum_version = high


def _ciphers(tls: TLSServerConfig, context: ssl.SSLContext, problems: list[str]) -> None:
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if not tls.cipher_suites:
        return
    names = []
    for i, name in enumerate(tls.cipher_suites):
        key = f"{WHERE}.cipher_suites[{i}]"
        if name in CIPHERS:
            names.append(CIPHERS[name])
        elif name in TLS13_CIPHERS:
            problems.append(
                f"{key}: a TLS 1.3 suite, which Python's ssl module can not choose (Go ignores "
                "TLS 1.3 suites too); remove it: TLS 1.3 always offers its own suites"
            )
        else:
            problems.append(f"{key}: unknown cipher suite (one of: {', '.join(CIPHERS)})")
    if tls.min_version == "TLS13":
        problems.append(f"{WHERE}.cipher_suites: no effect when min_version is TLS13")
    if names and len(names) == len(tls.cipher_suites):
        try:
            context.set_ciphers(":".join(names))
        except ssl.SSLError:
            problems.append(f"{WHERE}.cipher_suites: none of them is available in this OpenSSL")


def _curves(tls: TLSServerConfig, context: ssl.SSLContext, problems: list[str]) -> None:
    curves = list(dict.fromkeys(tls.curve_preferences))
    unknown = [i for i, name in enumerate(tls.curve_preferences) if name not in CURVES]
    problems += [
        f"{WHERE}.curve_preferences[{i}]: unknown curve (one of: {', '.join(CURVES)})"
        for i in unknown
    ]
    if unknown or not curves:
        return
    if len(curves) > 1:
        problems.append(
            f"{WHERE}.curve_preferences: Python's ssl module can set one curve only; give one"
        )
        return
    try:
        context.set_ecdh_curve(CURVES[curves[0]])
    except (ValueError, ssl.SSLError):
        problems.append(f"{WHERE}.curve_preferences[0]: not available in this OpenSSL")


def _read_text(key: str, path: Path, problems: list[str]) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        problems.append(f"{WHERE}.{key}: cannot read {shown(path)} ({reason})")
    except UnicodeDecodeError:
        problems.append(f"{WHERE}.{key}: {shown(path)} is not a PEM file")
    return None


def _one_of(tls: TLSServerConfig, inline: str, file: str, problems: list[str]) -> bool:
    given = [key for key in (inline, file) if _value(tls, key)]
    if len(given) == 2:
        problems.append(f"{WHERE}: {inline} and {file} are both set; set one")
    return len(given) == 1


def _value(tls: TLSServerConfig, key: str) -> str:
    value = getattr(tls, key)
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _pem(
    tls: TLSServerConfig, inline: str, file: str, base: Path, problems: list[str]
) -> str | None:
    if _value(tls, file):
        return _read_text(file, resolve(base, _value(tls, file)), problems)
    return _value(tls, inline)


def _client_auth(
    tls: TLSServerConfig, base: Path, context: ssl.SSLContext, problems: list[str]
) -> None:
    kind = tls.client_auth_type or "NoClientCert"
    has_ca = bool(tls.client_ca or tls.client_ca_file)
    ca = None
    if has_ca and _one_of(tls, "client_ca", "client_ca_file", problems):
        ca = _pem(tls, "client_ca", "client_ca_file", base, problems)
    if kind in UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"{WHERE}.client_auth_type: {kind} takes a client certificate without verifying it, "
            "which Python's ssl module can not do; use RequireAndVerifyClientCert (or "
            "VerifyClientCertIfGiven) with client_ca_file"
        )
        return
    if kind not in CLIENT_AUTH:
        known = ", ".join([*CLIENT_AUTH, *UNVERIFIED_CLIENT_AUTH])
        problems.append(f"{WHERE}.client_auth_type: unknown value (one of: {known})")
        return
    mode = CLIENT_AUTH[kind]
    if mode == ssl.CERT_NONE:
        if has_ca:
            problems.append(
                f"{WHERE}: a client CA is configured without a client auth policy "
                "(set client_auth_type)"
            )
        if tls.client_allowed_sans is not None:
            problems.append(
                f"{WHERE}.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert "
                "or VerifyClientCertIfGiven"
            )
        return
    context.verify_mode = mode
    if ca is not None:
        key = "client_ca_file" if tls.client_ca_file else "client_ca"
        if "-----BEGIN CERTIFICATE-----" not in ca:
            problems.append(f"{WHERE}.{key}: holds no PEM certificate")
        else:
            try:
                context.load_verify_locations(cadata=ca)
            except (ssl.SSLError, ValueError):
                problems.append(f"{WHERE}.{key}: not a valid PEM certificate bundle")
    elif not has_ca:
        # Go verifies against the system's roots when no client CA is given; so do we, loudly.
        logger.warning(
            "msg=%s client_auth_type=%s",
            "no client_ca_file: client certificates are verified against the system's CAs",
            kind,
        )
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    if tls.client_allowed_sans is not None:
        if not tls.client_allowed_sans:
            problems.append(f"{WHERE}.client_allowed_sans: empty, which refuses every client")
        else:
            context.sslobject_class = san_checked(tls.client_allowed_sans)


def _certificate(
    tls: TLSServerConfig, base: Path, context: ssl.SSLContext, problems: list[str]
) -> None:
    if not (tls.cert or tls.cert_file):
        problems.append(f"{WHERE}: missing one of cert or cert_file")
    if not (tls.key.get_secret_value() or tls.key_file):
        problems.append(f"{WHERE}: missing one of key or key_file")
    has_cert = _one_of(tls, "cert", "cert_file", problems)
    has_key = _one_of(tls, "key", "key_file", problems)
    if not (has_cert and has_key):
        return
    cert = _pem(tls, "cert", "cert_file", base, problems)
    key = _pem(tls, "key", "key_file", base, problems)
    if cert is None or key is None:
        return
    cert_key = "cert_file" if tls.cert_file else "cert"
    key_key = "key_file" if tls.key_file else "key"
    if "-----BEGIN CERTIFICATE-----" not in cert:
        problems.append(f"{WHERE}.{cert_key}: holds no PEM certificate")
        return
    if "PRIVATE KEY-----" not in key:
        problems.append(f"{WHERE}.{key_key}: holds no PEM private key")
        return
    try:
        with _pem_paths(cert, key) as (cert_path, key_path):
            context.load_cert_chain(cert_path, key_path, password=_no_passphrase)
    except _EncryptedKeyError:
        problems.append(
            f"{WHERE}.{key_key}: the key is encrypted, and the web config has no passphrase; "
            "give an unencrypted key"
        )
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            problems.append(f"{WHERE}: {key_key} does not match {cert_key}")
        else:
            problems.append(
                f"{WHERE}: {cert_key} and {key_key} do not load as a certificate and its key "
                f"({exc.reason or 'invalid'})"
            )


class _EncryptedKeyError(Exception):
    pass


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would ask for the passphrase on the terminal and wait.
    raise _EncryptedKeyError


@contextlib.contextmanager
def _pem_paths(*texts: str) -> Iterator[list[str]]:
    """Paths OpenSSL can read the PEM texts from; in memory where the system allows it."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("pem", os.MFD_CLOEXEC) for _ in texts]
        try:
            for fd, text in zip(fds, texts, strict=True):
                data = memoryview(text.encode("ascii", "replace"))
                while data:
                    data = data[os.write(fd, data) :]
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="webconfig-") as folder:
        paths = []
        for i, text in enumerate(texts):
            path = Path(folder) / f"{i}.pem"
            path.touch(mode=0o600)
            path.write_text(text, encoding="ascii", errors="replace")
            paths.append(str(path))
        yield paths


def san_checked(allowed: Sequence[str]) -> type[ssl.SSLObject]:
    """An SSLObject class that ends the handshake unless the verified client certificate has a
    Subject Alternative Name (DNS, IP, e-mail or URI) equal to one of ``allowed``, as the
    toolkit's ``client_allowed_sans`` does. No certificate at all is refused too."""
    names = frozenset(allowed)
    addresses = set()
    for name in allowed:
        with contextlib.suppress(ValueError):
            addresses.add(ipaddress.ip_address(name))

    def permitted(cert: dict[str, Any] | None) -> bool:
        for kind, value in (cert or {}).get("subjectAltName", ()):
            if kind == "IP Address":
                with contextlib.suppress(ValueError):
                    if ipaddress.ip_address(value.strip()) in addresses:
                        return True
            elif kind in ("DNS", "email", "URI") and value in names:
                return True
        return False

    class SanChecked(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            if not permitted(self.getpeercert()):
                logger.debug("msg=%s", "client certificate refused: no allowed SAN")
                raise ssl.SSLError("client certificate has no allowed subject alternative name")

    return SanChecked


class LiveContext(ssl.SSLContext):
    """Hands each new connection the context of the web config in force, so that a changed
    certificate, CA or policy applies from the next connection on (the toolkit re-reads its file
    for each new connection)."""

    source: Callable[[], ssl.SSLContext]

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.source().wrap_bio(
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
            session=session,
        )

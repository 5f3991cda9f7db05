"""The web config file: the exporter-toolkit's format validated whole (its own test table of good
and bad files, ported), `--config.check` on it, and TLS as it is enforced on real handshakes with
certificates made in the test."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import pytest

from exporter.cli import main
from exporter.config import ConfigError
from exporter.webconfig import load_web_config
from tests.conftest import wait_for
from tests.webcerts import Certs, exporter_with, make_certs

TLS = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
HASH = "$2b$04$M99xTI8GXIRy3Dw18O/weOif5YgM3IQNd26.aCFozjvYtq7a/paGe"  # "p", cost 4


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def write(certs: Certs, text: str, name: str = "web.yml") -> Path:
    path = certs.path(name)
    path.write_text(text, encoding="utf-8")
    return path


def problems(certs: Certs, text: str) -> list[str]:
    try:
        load_web_config(write(certs, text, "check.yml"))
    except ConfigError as exc:
        return exc.problems
    return []


GOOD = {
    "empty": "",
    "verify if given (no CA: the system's)": TLS + "  client_auth_type: VerifyClientCertIfGiven\n",
    "mTLS": TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    "users without TLS": f"basic_auth_users:\n  alice: {HASH}\n",
    "users with TLS": TLS + f"basic_auth_users:\n  alice: {HASH}\n",
    "headers": "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    "    Strict-Transport-Security: max-age=31536000; includeSubDomains\n"
    "    X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1\n"
    "    Content-Security-Policy: \"default-src 'self'\"\n",
    "no HTTP/2, TLS 1.2 only, one cipher": TLS + "  cipher_suites:\n"
    "    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  max_version: TLS12\n"
    "http_server_config:\n  http2: false\n",
    "client order": TLS + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"
    "  prefer_server_cipher_suites: false\n  min_version: TLS12\n  max_version: TLS12\n",
    "one curve": TLS + "  min_version: TLS13\n  curve_preferences: [CurveP521]\n",
    "rate limit off": "rate_limit:\n  interval: 0\n  burst: 0\n",
    "rate limit": "rate_limit:\n  interval: 1m30s\n  burst: 20\n",
    "allowed SANs": TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
    "  client_ca_file: ca.pem\n  client_allowed_sans: [one, client.example]\n",
}


@pytest.mark.parametrize("name", GOOD)
def test_good_files_load(certs: Certs, name: str) -> None:
    assert problems(certs, GOOD[name]) == []


def test_inline_certificate_key_and_client_ca(certs: Certs) -> None:
    def block(name: str) -> str:
        return "|\n" + "".join(f"    {line}\n" for line in certs.text(name).splitlines())

    text = (
        f"tls_server_config:\n  cert: {block('server.pem')}  key: {block('server.key')}"
        f"  client_ca: {block('ca.pem')}  client_auth_type: RequireAndVerifyClientCert\n"
    )
    assert problems(certs, text) == []
    assert problems(certs, text + "  cert_file: server.pem\n") == [
        "tls_server_config: cert and cert_file are both set; set one"
    ]


BAD = {
    "junk": ("hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n", "must be a mapping"),
    "unknown key": (
        "tls_server_config:\n  cert_filse: server.pem\n",
        "tls_server_config.cert_filse: unknown key",
    ),
    "unknown top key": ("web:\n  x: 1\n", "web: unknown key"),
    "cert path empty": (
        'tls_server_config:\n  cert_file: ""\n  key_file: server.key\n',
        "tls_server_config: missing one of cert or cert_file",
    ),
    "cert empty": (
        'tls_server_config:\n  cert: ""\n  key_file: server.key\n',
        "tls_server_config: missing one of cert or cert_file",
    ),
    "key path empty": (
        'tls_server_config:\n  cert_file: server.pem\n  key_file: ""\n',
        "tls_server_config: missing one of key or key_file",
    ),
    "cert and key empty, bad auth": (
        'tls_server_config:\n  cert_file: ""\n  key_file: ""\n  client_auth_type: "x"\n',
        "tls_server_config: missing one of cert or cert_file",
    ),
    "cert path invalid": (
        "tls_server_config:\n  cert_file: somefile\n  key_file: server.key\n",
        "tls_server_config.cert_file: cannot read ",
    ),
    "key path invalid": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: somefile\n",
        "tls_server_config.key_file: cannot read ",
    ),
    "client CA without policy": (
        TLS + "  client_ca_file: ca.pem\n",
        "client CA is configured without a client auth policy",
    ),
    "client CA path invalid": (
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: somefile\n",
        "tls_server_config.client_ca_file: cannot read ",
    ),
    "client CA not PEM": (
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.ext\n",
        "tls_server_config.client_ca_file: holds no PEM certificate",
    ),
    "user list invalid": ("basic_auth_users:\n  john: doe\n", "basic_auth_users.john: not a"),
    "user with a colon": (f"basic_auth_users:\n  'a:b': {HASH}\n", "can not hold ':'"),
    "bad cipher": (
        TLS + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n",
        "tls_server_config.cipher_suites[0]: unknown cipher suite",
    ),
    "TLS 1.3 cipher": (
        TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        "cipher_suites[0]: a TLS 1.3 suite, which Python's ssl module can not choose",
    ),
    "bad curve": (TLS + "  curve_preferences: [CurveP257]\n", "curve_preferences[0]: unknown"),
    "two curves": (
        TLS + "  curve_preferences: [CurveP256, X25519]\n",
        "curve_preferences: Python's ssl module can set one curve only",
    ),
    "bad TLS version": (TLS + "  min_version: TLS111\n", "min_version: unknown TLS version"),
    "TLS 1.1": (TLS + "  min_version: TLS11\n", "min_version: TLS 1.0 and 1.1 are refused"),
    "min above max": (
        TLS + "  min_version: TLS13\n  max_version: TLS12\n",
        "min_version: above max_version",
    ),
    "RequestClientCert": (
        TLS + "  client_auth_type: RequestClientCert\n",
        "RequestClientCert takes a client certificate without verifying it",
    ),
    "RequireAnyClientCert": (
        TLS + "  client_auth_type: RequireAnyClientCert\n",
        "RequireAnyClientCert takes a client certificate without verifying it",
    ),
    "SANs without client auth": (
        TLS + "  client_allowed_sans: [one]\n",
        "client_allowed_sans: needs client_auth_type",
    ),
    "TLS setting without TLS": (
        "tls_server_config:\n  min_version: TLS13\n",
        "tls_server_config.min_version: set, but TLS is off",
    ),
    "key does not match": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n",
        "tls_server_config: key_file does not match cert_file",
    ),
    "encrypted key": (
        "tls_server_config:\n  cert_file: server.pem\n  key_file: locked.key\n",
        "tls_server_config.key_file: the key is encrypted",
    ),
    "HTTP/2": ("http_server_config:\n  http2: true\n", "http2: this server speaks HTTP/1.1"),
    "header not allowed": (
        "http_server_config:\n  headers:\n    Content-Type: foo\n",
        "headers.Content-Type: can not be configured",
    ),
    "X-Content-Type-Options": (
        "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
        "headers.X-Content-Type-Options: invalid value (one of: nosniff)",
    ),
    "X-Frame-Options": (
        "http_server_config:\n  headers:\n    X-Frame-Options: foo\n",
        "headers.X-Frame-Options: invalid value (one of: deny, sameorigin)",
    ),
    "rate limit interval": ("rate_limit:\n  interval: 5\n", "rate_limit.interval: not a duration"),
    "duplicate user": (
        f"basic_auth_users:\n  alice: {HASH}\n  alice: {HASH}\n",
        "line 3, column 3: invalid YAML: duplicate key",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_files_are_refused_with_the_key_and_the_reason(certs: Certs, name: str) -> None:
    text, expected = BAD[name]
    found = problems(certs, text)
    assert any(expected in problem for problem in found), found


def test_config_check_lists_every_web_problem(
    certs: Certs, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = "sources:\n  - {name: d, type: datto, public_key: p, private_key: k}\n"
    config = write(certs, sources, "config.yml")
    web = write(
        certs,
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n"
        "  client_auth_type: RequireAnyClientCert\n  cipher_suite: []\n"
        "basic_auth_users:\n  alice: not-a-hash\n",
    )
    args = ["--config.file", str(config), "--web.config.file", str(web)]
    assert main([*args, "--config.check"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{web}: invalid web configuration:" in err
    assert "tls_server_config.cipher_suite: unknown key" in err
    # Schema problems come first; once the schema holds, every other problem is listed.
    web.write_text(web.read_text().replace("  cipher_suite: []\n", ""))
    assert main([*args, "--config.check"]) == 1
    err = capsys.readouterr().err
    assert f"tls_server_config.cert_file: cannot read {certs.path('missing.pem')}" in err
    assert "RequireAnyClientCert takes a client certificate without verifying it" in err
    assert "basic_auth_users.alice: not a bcrypt hash" in err
    assert "Traceback" not in err
    # Without --config.check: the same list, and nothing starts.
    assert main(args) == 1
    assert "cannot read" in capsys.readouterr().err
    web.write_text(TLS + f"basic_auth_users:\n  alice: {HASH}\n")
    assert main([*args, "--config.check"]) == 0
    assert f"{web}: OK (TLS, basic auth: 1 users" in capsys.readouterr().out


def get(url: str, context: ssl.SSLContext | None = None) -> httpx.Response:
    return httpx.get(url + "/-/healthy", verify=context or False, timeout=5)


def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """(TLS version, cipher) after a full exchange: a request, and its answer read."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert tls.recv(12).startswith(b"HTTP/1.1 200")
        version, cipher = tls.version(), tls.cipher()
        assert version is not None
        assert cipher is not None
        return version, cipher[0]


def refused(port: int, context: ssl.SSLContext) -> bool:
    try:
        handshake(port, context)
    except (ssl.SSLError, OSError, AssertionError):
        return True
    return False


def test_require_and_verify_client_cert(certs: Certs) -> None:
    web = write(certs, GOOD["mTLS"])
    with exporter_with(web) as served:
        assert get(served.url, certs.client("client")).status_code == 200
        with pytest.raises(httpx.TransportError):
            get(served.url, certs.client())
        with pytest.raises(httpx.TransportError):
            get(served.url, certs.client("rogue-client"))


def test_verify_client_cert_if_given(certs: Certs) -> None:
    web = write(
        certs, TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n"
    )
    with exporter_with(web) as served:
        assert get(served.url, certs.client()).status_code == 200
        assert get(served.url, certs.client("client")).status_code == 200
        with pytest.raises(httpx.TransportError):
            get(served.url, certs.client("rogue-client"))


def test_client_allowed_sans(certs: Certs) -> None:
    mtls = TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
    with exporter_with(write(certs, mtls + "  client_allowed_sans: [client.example]\n")) as s:
        assert get(s.url, certs.client("client")).status_code == 200
    with exporter_with(write(certs, mtls + "  client_allowed_sans: [bad]\n")) as served:
        assert refused(served.port, certs.client("client"))
    uri = "  client_allowed_sans: ['spiffe://test/client']\n"
    with exporter_with(write(certs, mtls + uri)) as served:
        assert get(served.url, certs.client("client")).status_code == 200


def test_min_and_max_version(certs: Certs) -> None:
    with exporter_with(write(certs, TLS + "  min_version: TLS13\n")) as served:
        assert handshake(served.port, certs.client())[0] == "TLSv1.3"
        assert refused(served.port, certs.client(maximum_version=ssl.TLSVersion.TLSv1_2))
    with exporter_with(write(certs, TLS + "  max_version: TLS12\n")) as served:
        assert handshake(served.port, certs.client())[0] == "TLSv1.2"
        assert refused(served.port, certs.client(minimum_version=ssl.TLSVersion.TLSv1_3))


def test_cipher_suites_and_their_order(certs: Certs) -> None:
    aes128, aes256 = "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"
    client_prefers_128 = certs.client(ciphers=f"{aes128}:{aes256}")
    suites = (
        "  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n"
        "    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  max_version: TLS12\n"
    )
    with exporter_with(write(certs, TLS + suites)) as served:
        assert handshake(served.port, client_prefers_128) == ("TLSv1.2", aes256)
    with exporter_with(write(certs, TLS + suites + "  prefer_server_cipher_suites: false\n")) as s:
        assert handshake(s.port, client_prefers_128) == ("TLSv1.2", aes128)
    only = (
        TLS + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  max_version: TLS12\n"
    )
    with exporter_with(write(certs, only)) as served:
        assert refused(served.port, certs.client(ciphers=aes256))
        assert handshake(served.port, certs.client(ciphers=aes128)) == ("TLSv1.2", aes128)


def test_curve_preferences(certs: Certs) -> None:
    with exporter_with(write(certs, TLS + "  curve_preferences: [CurveP384]\n")) as served:
        assert handshake(served.port, certs.client(curve="secp384r1"))[0] == "TLSv1.3"
        assert refused(served.port, certs.client(curve="prime256v1"))


def test_inline_certificate_serves(certs: Certs) -> None:
    key = "".join(f"    {line}\n" for line in certs.text("server.key").splitlines())
    cert = "".join(f"    {line}\n" for line in certs.text("server.pem").splitlines())
    web = write(certs, f"tls_server_config:\n  cert: |\n{cert}  key: |\n{key}")
    with exporter_with(web) as served:
        assert get(served.url, certs.client()).status_code == 200
        # Plain HTTP to the TLS port gets nothing.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{served.port}/-/healthy", timeout=5)


def test_the_command_line_serves_with_the_web_config(certs: Certs) -> None:
    from tests.test_cli import free_port, running

    sources = "cache: {warm_up: false}\nsources:\n  - {name: d, type: datto, "
    sources += "base_url: 'http://127.0.0.1:9', public_key: p, private_key: kkkkkkk}\n"
    config = write(certs, sources, "served.yml")
    mtls = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
    headers = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    web = write(certs, TLS + mtls + headers + f"basic_auth_users:\n  p: {HASH}\n", "cli-web.yml")
    port = free_port()
    args = ["--config.file", str(config), "--web.config.file", str(web)]
    with running(*args, "--web.listen-address", f"127.0.0.1:{port}"):
        url = f"https://127.0.0.1:{port}/-/healthy"
        client = certs.client("client")
        wait_for(url, "Unauthorized", verify=client)
        response = httpx.get(url, verify=client, auth=("p", "p"), timeout=5)
        assert (response.status_code, response.headers["x-frame-options"]) == (200, "deny")
        with pytest.raises(httpx.TransportError):
            httpx.get(url, verify=certs.client(), auth=("p", "p"), timeout=5)

"""What the web config asks of each request, over real sockets: basic auth against bcrypt hashes
(the toolkit's own cases: many concurrent right and wrong logins, the decoy password,
CVE-2022-46146), the cache that spares a scrape bcrypt's cost, the response headers, the rate
limit, reloading a changed file, and no secret in any error, log or page."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from exporter import logs, webauth
from exporter.cli import main
from tests.webcerts import Certs, exporter_with, make_certs

# The toolkit's testdata users (web_config_users_noTLS.good.yml) at cost 10, password "<name>123".
CAROL = "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu"
DAVE = "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq"
ALICE_COST_12 = "$2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby"
USERS = f"basic_auth_users:\n  carol: {CAROL}\n  dave: {DAVE}\n"
TLS = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
HEADERS = (
    "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    "    Strict-Transport-Security: max-age=31536000; includeSubDomains\n"
    "    X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1\n"
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every bcrypt comparison the server makes (the password of each), still done for real."""
    calls: list[bytes] = []
    real = webauth.check_password

    def counted(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(webauth, "check_password", counted)
    return calls


def replace(path: Path, text: str) -> None:
    """A new file in its place, as an editor or a config manager writes it."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text, encoding="utf-8")
    os.replace(fresh, path)


def web_file(tmp_path: Path, certs: Certs, text: str) -> Path:
    for name in ("server.pem", "server.key"):
        (tmp_path / name).write_bytes(certs.path(name).read_bytes())
    path = tmp_path / "web.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_basic_auth_on_every_path_and_bcrypt_once(
    tmp_path: Path, certs: Certs, bcrypt_calls: list[bytes]
) -> None:
    with exporter_with(web_file(tmp_path, certs, USERS)) as served:
        for path in ("/", "/metrics", "/-/healthy", "/-/ready", "/nowhere"):
            response = httpx.get(served.url + path, timeout=5)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Basic"
        assert bcrypt_calls == []
        assert httpx.get(served.url + "/-/healthy", auth=("dave", "bad")).status_code == 401
        assert bcrypt_calls == [b"bad"]
        for _ in range(3):
            ok = httpx.get(served.url + "/-/healthy", auth=("dave", "dave123"), timeout=5)
            assert ok.status_code == 200
            assert ok.text == "Healthy\n"
        # The second and third requests were answered from the cache of verified credentials.
        assert bcrypt_calls == [b"bad", b"dave123"]
        assert httpx.get(served.url + "/-/healthy", auth=("dave", "bad")).status_code == 401
        assert len(bcrypt_calls) == 2
        # Another user's right password is not a key to this one.
        assert httpx.get(served.url + "/-/healthy", auth=("dave", "carol123")).status_code == 401
        assert httpx.get(served.url + "/-/healthy", auth=("carol", "carol123")).status_code == 200
        for header in ("Bearer x", "Basic !!!", "Basic ZGF2ZQ=="):  # the last: no colon
            response = httpx.get(served.url + "/", headers={"Authorization": header})
            assert response.status_code == 401


def test_many_concurrent_right_and_wrong_logins(
    tmp_path: Path, certs: Certs, bcrypt_calls: list[bytes]
) -> None:
    async def logins(url: str) -> list[tuple[str, int]]:
        async with httpx.AsyncClient(timeout=60) as client:
            start = asyncio.Event()

            async def login(password: str) -> tuple[str, int]:
                await start.wait()
                response = await client.get(url, auth=("dave", password))
                return password, response.status_code

            tasks = [asyncio.create_task(login(p)) for _ in range(150) for p in ("dave123", "x")]
            await asyncio.sleep(0.05)
            start.set()
            return await asyncio.gather(*tasks)

    with exporter_with(web_file(tmp_path, certs, USERS)) as served:
        results = asyncio.run(logins(served.url + "/-/healthy"))
    assert sorted(set(results)) == [("dave123", 200), ("x", 401)]
    assert len(results) == 300
    # One bcrypt per distinct credential, however many asked at once.
    assert sorted(bcrypt_calls) == [b"dave123", b"x"]


def test_unknown_users_and_the_decoy_password(
    tmp_path: Path, certs: Certs, bcrypt_calls: list[bytes]
) -> None:
    with exporter_with(web_file(tmp_path, certs, USERS)) as served:
        for _ in range(2):  # a cold cache, then a warm one
            response = httpx.get(served.url + "/", auth=("fakeuser", "fakepassword"))
            assert response.status_code == 401
        # An unknown user costs a bcrypt too, so timing does not tell who exists.
        assert bcrypt_calls == [b"fakepassword"]
        # CVE-2022-46146: an unknown user whose name ends in a hash, with the password that
        # matches the decoy, must not leave a cache entry that a known user's login can reuse.
        # Unknown users are checked against the first user's hash here, the toolkit's decoy there.
        assert httpx.get(served.url + "/", auth=("carol" + CAROL, "carol123")).status_code == 401
        assert httpx.get(served.url + "/", auth=("carol", CAROL + "carol123")).status_code == 401
        assert httpx.get(served.url + "/", auth=("dave", DAVE)).status_code == 401
        for password in ("carol123", "dave123"):
            assert httpx.get(served.url + "/", auth=("nobody", password)).status_code == 401
        assert httpx.get(served.url + "/", auth=("dave", "dave123")).status_code == 200


def test_headers_on_every_response(tmp_path: Path, certs: Certs) -> None:
    expected = {
        "strict-transport-security": "max-age=31536000; includeSubDomains",
        "x-frame-options": "deny",
        "x-content-type-options": "nosniff",
        "x-xss-protection": "1",
    }
    with exporter_with(web_file(tmp_path, certs, HEADERS + USERS)) as served:
        refused = httpx.get(served.url + "/")
        allowed = httpx.get(served.url + "/", auth=("carol", "carol123"))
        missing = httpx.get(served.url + "/nowhere", auth=("carol", "carol123"))
    assert (refused.status_code, allowed.status_code, missing.status_code) == (401, 200, 404)
    for response in (refused, allowed, missing):
        assert {k: response.headers.get(k) for k in expected} == expected


def test_rate_limit(tmp_path: Path, certs: Certs) -> None:
    with exporter_with(web_file(tmp_path, certs, "rate_limit:\n  interval: 1m\n  burst: 3\n")) as s:
        codes = [httpx.get(s.url + "/-/healthy").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    # The toolkit's one_second case: no burst, so nothing gets through.
    with exporter_with(web_file(tmp_path, certs, "rate_limit:\n  interval: 1s\n  burst: 0\n")) as s:
        refused = httpx.get(s.url + "/-/healthy")
    assert (refused.status_code, refused.text) == (429, "Too Many Requests\n")
    with exporter_with(web_file(tmp_path, certs, "rate_limit:\n  interval: 0\n  burst: 0\n")) as s:
        assert {httpx.get(s.url + "/-/healthy").status_code for _ in range(10)} == {200}


def server_certificate(port: int, certs: Certs) -> bytes:
    context = certs.client()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def der(certs: Certs, name: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(certs.text(name))


def test_reload_picks_up_a_new_certificate_and_password(
    tmp_path: Path, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    web = web_file(tmp_path, certs, TLS + USERS)
    client = certs.client()
    with exporter_with(web) as served:
        assert server_certificate(served.port, certs) == der(certs, "server.pem")
        assert httpx.get(served.url, verify=client, auth=("dave", "dave123")).status_code == 200
        # A renewed certificate in the same files, and a changed user list.
        replace(tmp_path / "server.pem", certs.text("server2.pem"))
        replace(tmp_path / "server.key", certs.text("server2.key"))
        replace(web, TLS + f"basic_auth_users:\n  alice: {ALICE_COST_12}\n")
        time.sleep(1.1)
        assert server_certificate(served.port, certs) == der(certs, "server2.pem")
        assert httpx.get(served.url, verify=client, auth=("dave", "dave123")).status_code == 401
        assert httpx.get(served.url, verify=client, auth=("alice", "alice123")).status_code == 200
    assert "web config reloaded" in caplog.text


def test_a_bad_new_file_keeps_the_one_in_force(
    tmp_path: Path, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    web = web_file(tmp_path, certs, TLS + USERS)
    canary = "$2y$10$CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYCANAR"
    client = certs.client()
    with exporter_with(web, every=0.0) as served:
        bad_files = [
            TLS + f"basic_auth_users:\n  dave: {canary}x\n",  # not a hash: one letter too many
            TLS + f"basic_auth_users:\n  dave: [{canary}]\n",
            f"basic_auth_users:\n  dave: {canary}\n",  # TLS off while running
            TLS.replace("server.pem", "gone.pem") + f"basic_auth_users:\n  dave: {canary}\n",
            TLS + f'basic_auth_users:\n  dave: "{canary}\n',
        ]
        for text in bad_files:
            replace(web, text)
            response = httpx.get(served.url, verify=client, auth=("dave", "dave123"))
            assert response.status_code == 200, text
        replace(web, TLS + f"basic_auth_users:\n  alice: {ALICE_COST_12}\n")
        assert httpx.get(served.url, verify=client, auth=("alice", "alice123")).status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == len(bad_files)
    formatted = "\n".join(logs.LogfmtFormatter().format(r) for r in caplog.records)
    assert f"file={web}" in formatted
    assert "TLS can not be turned on or off while running" in formatted
    assert "tls_server_config.cert_file: cannot read" in formatted
    assert "basic_auth_users.dave: not a bcrypt hash" in formatted
    assert "CANARY" not in formatted
    assert "web config reloaded" in formatted


def test_no_secret_in_any_error_log_or_page(
    tmp_path: Path,
    certs: Certs,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = "CANARY-5d1c0b"
    config = tmp_path / "config.yml"
    config.write_text("sources:\n  - {name: d, type: datto, public_key: p, private_key: kkkkkkk}\n")
    broken = [
        f"basic_auth_users:\n  alice: {canary}\n",
        f"basic_auth_users:\n  alice: [{canary}]\n",
        f"basic_auth_users:\n  alice: {{{canary}: 1}}\n",
        f"basic_auth_users:\n  alice: '{canary}\n",
        f"basic_auth_users:\n  alice: *{canary}\n",
        f"basic_auth_users:\n  alice: !!{canary} x\n",
        f"basic_auth_users:\n  alice: {canary}\n  alice: {canary}\n",
        f"tls_server_config:\n  cert_file: server.pem\n  key: {canary}\n",
        f"tls_server_config:\n  cert_file: server.pem\n  key: [{canary}]\n",
        f"tls_server_config:\n  cert_file: server.pem\n  key: |\n"
        f"    -----BEGIN PRIVATE KEY-----\n    {canary}\n    -----END PRIVATE KEY-----\n",
        f"tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        f"  cipher_suites: [{canary}]\n  client_auth_type: {canary}\n",
        f"http_server_config:\n  headers:\n    X-Frame-Options: {canary}\n",
        f"rate_limit:\n  interval: {canary}\n",
        # Secrets in the wrong place: a hash as a user name, a key where its path goes.
        f"basic_auth_users:\n  {ALICE_COST_12[:-6]}{canary[:6]}: alice\n",
        f"basic_auth_users:\n  {ALICE_COST_12[:-6]}{canary[:6]}: {{x: 1}}\n",
        f"tls_server_config:\n  cert_file: server.pem\n  key_file: |\n"
        f"    -----BEGIN PRIVATE KEY-----\n    {canary}\n    -----END PRIVATE KEY-----\n",
        f"http_server_config:\n  headers:\n    {ALICE_COST_12[:-6]}{canary[:6]}: x\n",
        f"web:\n  {ALICE_COST_12[:-6]}{canary[:6]}: x\n",
    ]
    for text in broken:
        web = web_file(tmp_path, certs, text)
        args = ["--config.file", str(config), "--web.config.file", str(web), "--config.check"]
        assert main(args) == 1, text
        out, err = capsys.readouterr()
        assert "invalid web configuration" in err
        assert "CANARY" not in out + err, text
    # A running server: a wrong password is not echoed in the page or the log.
    password = "CANARY-password-77"
    with exporter_with(web_file(tmp_path, certs, USERS)) as served:
        response = httpx.get(served.url + "/metrics", auth=("dave", password))
        assert response.status_code == 401
        assert password not in response.text
        assert password not in str(response.headers)
        assert "dave" not in response.text
    shown = "\n".join(logs.LogfmtFormatter().format(r) for r in caplog.records)
    shown += "".join(capsys.readouterr())
    assert password not in shown
    assert CAROL not in shown

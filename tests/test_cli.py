"""The command line as a user runs it: real processes, real ports."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from exporter.server import parse_listen_address
from tests.conftest import IN_CI, promtool_check_metrics, require_tool, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.mark.parametrize(
    ("address", "expected"),
    [(":10049", ("0.0.0.0", 10049)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::]:9", ("::", 9))],
)
def test_listen_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["10049", "host:", "host:99999", "host:http"])
def test_bad_listen_addresses(address: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_listen_address(address)


def test_demo_serves_the_simulated_fleet() -> None:
    port = free_port()
    with running("demo", "--web.listen-address", f"127.0.0.1:{port}") as process:
        response = wait_for(f"http://127.0.0.1:{port}/metrics", "saas_backup_customer_info{")
        body = response.text
        for source in ("datto", "backupify", "cloudally"):
            assert f'saas_backup_up{{source="{source}"}} 1.0' in body
        assert "saas_backup_active_backup_start_timestamp_seconds{" in body
        assert "saas_backup_last_backup_end_timestamp_seconds{" in body
        assert 'saas_backup_restore_jobs{source="cloudally",status="failed",type="restore"}' in body
        assert "saas_backup_restore_job_start_timestamp_seconds{" in body
        # The demo serves the live shapes: Datto's seats carry no backup time, its
        # applications come as daily windows.
        assert "saas_backup_seat_last_backup_timestamp_seconds{" not in body
        assert 'saas_backup_application_services{application="Office365Exchange"' in body
        assert "saas_backup_application_last_fully_protected_timestamp_seconds{" in body
        assert 'saas_backup_seats_billable{customer_id="1001",source="datto"}' in body
        assert 'status="inactive"' in body
        landing = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        assert "<td>up</td>" in landing
        promtool_check_metrics(body)
    output = process.stdout.read() if process.stdout else ""
    assert f"http://127.0.0.1:{port}/metrics" in output or f"localhost:{port}/metrics" in output
    assert process.returncode == 0, output


def test_simulator_runs_alone() -> None:
    port = free_port()
    with running(
        "simulator",
        "--listen",
        f"127.0.0.1:{port}",
        "--customers",
        "3",
        "--faults",
        "504@seats?min_seats=0",
    ):
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/_sim/stats", "calls")
        domains = httpx.get(url + "/v1/saas/domains", auth=("demo-public", "demo-private"))
        assert len(domains.json()) == 3
        seats = httpx.get(url + "/v1/saas/1001/seats", auth=("demo-public", "demo-private"))
        assert seats.status_code == 504


def test_tls_and_a_client_that_never_handshakes(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        if IN_CI:
            pytest.fail("openssl is needed to make a test certificate")
        pytest.skip("openssl missing")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    config = tmp_path / "config.yml"
    config.write_text(
        "cache: {warm_up: false}\n"
        "sources:\n"
        "  - {name: datto, type: datto, base_url: 'http://127.0.0.1:9', public_key: p,"
        " private_key: secret-secret}\n"
    )
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with running(
        "--config.file",
        str(config),
        "--web.config.file",
        str(web),
        "--web.listen-address",
        f"127.0.0.1:{port}",
    ):
        wait_for(url + "/-/healthy", "Healthy", verify=False)
        # A client that connects and never speaks TLS must not stall anyone else.
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        try:
            started = time.monotonic()
            response = httpx.get(url + "/-/healthy", verify=False, timeout=5)
            assert response.status_code == 200
            assert time.monotonic() - started < 2
        finally:
            for sock in stalled:
                sock.close()


def test_bad_web_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from exporter.cli import main

    config = tmp_path / "config.yml"
    config.write_text("sources:\n  - {name: d, type: datto, public_key: p, private_key: kkkkkkk}\n")
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {a: b}\ntls_server_config: {key_file: k.pem}\n")
    assert main(["--config.file", str(config), "--web.config.file", str(web)]) == 1
    err = capsys.readouterr().err
    assert "basic_auth_users.a: not a bcrypt hash" in err
    assert "tls_server_config: missing one of cert or cert_file" in err


def test_dockerfile_is_clean_under_hadolint() -> None:
    hadolint = require_tool("hadolint")
    dockerfile = Path(__file__).parent.parent / "Dockerfile"
    result = subprocess.run(
        [hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert "USER 10049:10049" in text
    assert 'ENTRYPOINT ["saas-backup-exporter"]' in text
    assert "EXPOSE 10049" in text
    assert text.count("FROM ") == 2

"""A canary private key must appear in no log line, metric, page or error."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from exporter import logs
from exporter.app import build_app
from exporter.config import build_config
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.vendors.backupify.simulator import BackupifySim
from exporter.vendors.cloudally.simulator import CloudAllySim
from tests.conftest import ServerThread, datto_source

CANARY = "CANARY-3b1f9c0d-do-not-leak"
CLIENT_CANARY = "CANARY-client-secret-77e1"
PASSWORD_CANARY = "CANARY-password-52aa"
PUBLIC = "public-key-1"
CLIENT = "client-1"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.setup("debug", "logfmt", stream=stream)
    # Even the HTTP libraries' own debug logs must not carry the key.
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore").setLevel(logging.DEBUG)
    yield stream
    # The root logger itself is restored by conftest's autouse fixture.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def forms_of_the_secret(sim: Simulator) -> list[str]:
    basic = base64.b64encode(f"{PUBLIC}:{CANARY}".encode()).decode()
    # The access and refresh tokens the simulator handed out are secrets too.
    tokens = [
        *sim.part(BackupifySim).tokens.issued_values(),
        *sim.part(CloudAllySim).tokens.issued_values(),
    ]
    return [CANARY, basic, CANARY.lower(), CLIENT_CANARY, PASSWORD_CANARY, *tokens]


def test_canary_private_key_never_leaks(captured_logs: io.StringIO) -> None:
    sim = Simulator(
        customers=3,
        seats_per_customer=5,
        seed=4,
        public_key=PUBLIC,
        private_key=CANARY,
        client_id=CLIENT,
        client_secret=CLIENT_CANARY,
        token_ttl=0.5,
    )
    seen: list[str] = []
    with ServerThread(sim.app()) as sim_server:
        config = build_config(
            {
                "cache": {"ttl_seconds": 0.2, "warm_up": False},
                "sources": [
                    datto_source(sim_server.url, public_key=PUBLIC, private_key=CANARY),
                    datto_source(
                        sim_server.url, name="wrong", public_key=PUBLIC, private_key=CANARY + "x"
                    ),
                    {
                        "name": "backupify",
                        "type": "backupify",
                        "base_url": sim_server.url,
                        "client_id": CLIENT,
                        "client_secret": CLIENT_CANARY,
                        "token_margin_seconds": 0,
                    },
                    {
                        "name": "cloudally",
                        "type": "cloudally",
                        "base_url": sim_server.url,
                        "client_id": CLIENT,
                        "client_secret": CLIENT_CANARY,
                        "auth_style": "headers",
                        "email": "ops@example.com",
                        "password": PASSWORD_CANARY,
                        "token_margin_seconds": 0,
                    },
                ],
            }
        )
        assert CANARY not in repr(config)
        with ServerThread(build_app(config)) as exporter:
            faults = [
                [],
                [parse_fault("500@*")],
                [parse_fault("malformed@*")],
                [parse_fault("401@*")],
                [parse_fault("429@*?retry_after=0")],
                [parse_fault("hang@*?delay_ms=3000")],
            ]
            for fault in faults:
                sim.set_faults(fault)
                time.sleep(0.25)
                for path in ("/metrics", "/", "/-/ready", "/-/healthy"):
                    response = httpx.get(
                        exporter.url + path,
                        headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"},
                        timeout=10,
                    )
                    seen.append(response.text)
                    seen.append(str(response.headers))
    log_text = captured_logs.getvalue()
    assert "refresh" in log_text, "the test must actually capture the exporter's logs"
    assert "HTTP 401" in "\n".join(seen)
    assert 'saas_backup_up{source="backupify"}' in "\n".join(seen)
    assert sim.calls["backupify.token"] >= 2, "tokens expired and were fetched again"
    assert sim.calls["cloudally.refresh"] >= 1, "a refresh token was used"
    everything = log_text + "\n".join(seen)
    forms = forms_of_the_secret(sim)
    assert len(forms) > 8
    for form in forms:
        assert form not in everything


def test_redactor_is_a_last_line_of_defence() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.LogfmtFormatter())
    logger = logging.getLogger("tests.redactor")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logs.redact.register([CANARY])
        logger.warning("msg=%s value=%s", "oops", f"key={CANARY}")
    finally:
        logger.removeHandler(handler)
    assert CANARY not in stream.getvalue()
    assert logs.REDACTED in stream.getvalue()

"""The HTTP server stays up against hostile clients, over real sockets: idle, half-open and
trickling connections, request floods, bad scrape-timeout headers and loose content
negotiation."""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from exporter.app import build_app
from exporter.config import ScrapeConfig, build_config
from exporter.limits import server_options
from exporter.negotiation import wants_gzip, wants_openmetrics
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from tests.conftest import ServerThread, datto_source

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# uvicorn's limit_concurrency used to be 64 and counted idle connections.
OLD_LIMIT = 64
# A crawl that never ends by itself: every scrape waits for its deadline.
PATIENT: dict[str, Any] = {"timeout_seconds": 300, "refresh_timeout_seconds": 300}


@contextmanager
def exporter(
    sim_url: str,
    *,
    web: dict[str, Any] | None = None,
    scrape: dict[str, Any] | None = None,
    **source: Any,
) -> Iterator[ServerThread]:
    """The exporter served with the uvicorn settings the command line uses."""
    config = build_config(
        {
            "cache": {"warm_up": False},
            "scrape": scrape or {},
            "web": web or {},
            "sources": [datto_source(sim_url, **source)],
        }
    )
    with ServerThread(build_app(config), **server_options(config.web)) as server:
        yield server


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def open_connections(server: ServerThread) -> int:
    return len(server.server.server_state.connections)


def connect(server: ServerThread, first_bytes: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if first_bytes:
        sock.sendall(first_bytes)
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Without blocking: has the server closed this connection?"""
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    return data == b""


def trickle(sock: socket.socket) -> bool:
    """One more header byte; False once the server has closed the connection."""
    try:
        sock.send(b"a")
    except BlockingIOError:
        return True
    except OSError:
        return False
    return not closed_by_server(sock)


def get(server: ServerThread, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.url + path, headers=headers, timeout=60)


def scrape(server: ServerThread, **headers: str) -> httpx.Response:
    return get(server, "/metrics", **{TIMEOUT_HEADER: "15", **headers})


def test_idle_and_half_open_connections_do_not_block_requests(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    _, vendor = sim_server
    with exporter(vendor.url, web={"header_read_timeout_seconds": 600}) as server:
        idle = [connect(server) for _ in range(2 * OLD_LIMIT)]
        half_open = [
            connect(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: ")
            for _ in range(OLD_LIMIT // 2)
        ]
        held = len(idle) + len(half_open)
        wait_until(lambda: open_connections(server) >= held, "every connection accepted")

        healthy = get(server, "/-/healthy")
        assert healthy.status_code == 200, healthy.text
        metrics = scrape(server)
        assert metrics.status_code == 200, metrics.text
        assert 'saas_backup_up{source="datto"} 1' in metrics.text
        ready = get(server, "/-/ready")
        assert ready.status_code == 200, ready.text

        # They were all still open while those requests were served.
        assert open_connections(server) >= held
        assert not any(closed_by_server(s) for s in idle + half_open)
        for sock in idle + half_open:
            sock.close()


def test_idle_and_trickling_connections_are_closed_after_the_header_timeout(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    _, vendor = sim_server
    with exporter(vendor.url, web={"header_read_timeout_seconds": 1}) as server:
        idle = [connect(server) for _ in range(20)]
        # A byte at a time, faster than the timeout: each byte must not restart the clock.
        trickling = [connect(server, b"GET /metrics HTTP/1.1\r\nX-Slow: ") for _ in range(20)]
        # Served once, then trickling its next request on the kept-alive connection.
        kept_alive = connect(server, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        kept_alive.settimeout(10)
        answer = b""
        while not answer.endswith(b"Healthy\n"):
            answer += kept_alive.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        kept_alive.setblocking(False)
        kept_alive.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        trickling.append(kept_alive)

        still_open = set(idle)
        still_trickling = set(trickling)
        deadline = time.monotonic() + 60
        while still_open or still_trickling:
            assert time.monotonic() < deadline, (
                f"{len(still_open)} idle and {len(still_trickling)} trickling connections "
                "never closed"
            )
            still_open = {s for s in still_open if not closed_by_server(s)}
            still_trickling = {s for s in still_trickling if trickle(s)}
            time.sleep(0.1)

        assert get(server, "/-/healthy").status_code == 200
        wait_until(lambda: open_connections(server) == 0, "the server let go of them")
        for sock in idle + trickling:
            sock.close()


def test_at_the_connection_cap_idle_connections_make_room(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    _, vendor = sim_server
    cap = 16
    web = {"max_connections": cap, "header_read_timeout_seconds": 600}
    with exporter(vendor.url, web=web) as server:
        idle = [connect(server) for _ in range(3 * cap)]
        wait_until(
            lambda: sum(closed_by_server(s) for s in idle) >= 2 * cap,
            "the oldest idle connections closed to make room",
        )
        assert open_connections(server) <= cap
        # The newest idle ones are the ones kept.
        assert not any(closed_by_server(s) for s in idle[-cap // 2 :])

        assert get(server, "/-/healthy").status_code == 200
        metrics = scrape(server)
        assert metrics.status_code == 200, metrics.text
        assert 'saas_backup_up{source="datto"} 1' in metrics.text
        for sock in idle:
            sock.close()


def test_requests_beyond_max_concurrency_get_503_but_probes_answer(
    sim_server: tuple[Simulator, ServerThread],
) -> None:
    sim, sim_thread = sim_server
    sim.set_faults([parse_fault("hang@*")])

    def hanging_scrape(server: ServerThread) -> int | None:
        try:
            return scrape(server, **{TIMEOUT_HEADER: "120"}).status_code
        except httpx.HTTPError:
            return None  # cut off when the server stops

    with (
        concurrent.futures.ThreadPoolExecutor(2) as pool,
        exporter(sim_thread.url, web={"max_concurrency": 2}, **PATIENT) as server,
    ):
        for _ in range(2):
            pool.submit(hanging_scrape, server)
        wait_until(lambda: len(server.server.server_state.tasks) >= 2, "two scrapes in flight")

        refused = scrape(server)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert get(server, "/-/healthy").status_code == 200
        # Served by the app, not refused: the source's first crawl has not finished.
        assert get(server, "/-/ready").text.startswith("Not ready: waiting for datto")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1.0),
        ("NaN", 1.0),
        ("nan", 1.0),
        ("inf", 1.0),
        ("-inf", 1.0),
        ("Infinity", 1.0),
        ("1e309", 1.0),
        ("-1", 1.0),
        ("0", 1.0),
        ("0.0", 1.0),
        ("garbage", 1.0),
        ("", 1.0),
        ("0x10", 1.0),
        ("1_0", 1.0),
        ("\u0665", 1.0),  # an Arabic-Indic five, which float() would take
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("1e308", 30.0),
        ("45", 30.0),
    ],
)
def test_scrape_timeout_header_is_finite_positive_and_capped(
    header: str | None, seconds: float
) -> None:
    scrape_config = ScrapeConfig(
        default_timeout_seconds=1, timeout_offset_seconds=0, max_timeout_seconds=30
    )
    assert scrape_config.deadline(header) == seconds


def test_scrape_timeout_header_without_a_maximum_is_still_finite() -> None:
    assert ScrapeConfig(timeout_offset_seconds=0).deadline("1e308") == 3600.0


def test_bad_scrape_timeout_headers_fall_back_to_the_default_over_a_socket(
    sim_server: tuple[Simulator, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    """Each scrape waits for a crawl that never ends, so how long it takes is its deadline."""
    caplog.set_level(logging.DEBUG, logger="exporter.config")
    sim, sim_thread = sim_server
    sim.set_faults([parse_fault("hang@*")])
    default, cap = 0.5, 6.0
    scrape_config = {
        "default_timeout_seconds": default,
        "timeout_offset_seconds": 0,
        "max_timeout_seconds": cap,
    }
    with exporter(sim_thread.url, scrape=scrape_config, **PATIENT) as server:

        def timed(value: str) -> float:
            started = time.monotonic()
            response = scrape(server, **{TIMEOUT_HEADER: value})
            assert response.status_code == 200, (value, response.text)
            return time.monotonic() - started

        for bad in ("NaN", "inf", "-inf", "-1", "0", "1e309", "garbage"):
            caplog.clear()
            elapsed = timed(bad)
            # Never before the default deadline; far sooner than the cap (or never, before).
            assert default <= elapsed < cap - 1, (bad, elapsed)
            assert "ignoring bad scrape timeout header" in caplog.text, bad
        # After a NaN the event loop's timers still work: a good header is honoured.
        assert 1.0 <= timed("1") < cap - 1
        assert cap <= timed("1e308") < PATIENT["refresh_timeout_seconds"]


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("application/openmetrics-text; version=1.0.0; q=0.5, text/plain; q=0.9", False),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;version=1.0.0;q=0, */*", False),
        ("application/openmetrics-text; version=1.0.0", True),
        ("APPLICATION/OpenMetrics-Text ; Version=1.0.0 ; Q=0.8 , text/plain ; q=0.2", True),
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            True,
        ),
        ("application/openmetrics-text;version=2.0.0", False),
        ("application/openmetrics-text, text/plain", True),
        ("text/plain, application/openmetrics-text", False),
        ("application/openmetrics-text;q=0.5, */*", False),
        ("application/*", True),
        ("*/*", False),
        ("text/html", False),
        ("application/openmetrics-text;q=nan", False),
        ("application/openmetrics-text;q=2", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_q_values(accept: str | None, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


@pytest.mark.parametrize(
    ("accept_encoding", "gzip"),
    [
        ("gzip", True),
        ("gzip;q=0", False),
        ("GZIP;Q=0", False),
        ("gzip ; q=0.0 ", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("*", True),
        ("identity", False),
        ("identity;q=0, gzip", True),
        ("gzip;q=0.5, identity", False),
        ("identity;q=0.5, GZip;q=0.6", True),
        ("x-gzip", True),
        ("deflate, br, gzip;q=0.5", True),
        ("gzip;q=abc", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding_q_values(accept_encoding: str | None, gzip: bool) -> None:
    assert wants_gzip(accept_encoding) is gzip


def test_content_negotiation_over_a_socket(sim_server: tuple[Simulator, ServerThread]) -> None:
    _, vendor = sim_server
    with exporter(vendor.url) as server:
        cases = [
            (
                {"Accept": "application/openmetrics-text; version=1.0.0; q=0.5, text/plain; q=0.9"},
                False,
                False,
            ),
            ({"Accept": "application/openmetrics-text;q=0"}, False, False),
            ({"Accept": "application/openmetrics-text; version=1.0.0"}, True, False),
            ({"Accept-Encoding": "GZIP;Q=0"}, False, False),
            ({"Accept-Encoding": "gzip;q=0, *;q=1"}, False, False),
            ({"Accept-Encoding": "*;q=0"}, False, False),
            ({"Accept-Encoding": "identity"}, False, False),
            ({"Accept-Encoding": "br;q=1, gzip;q=0.5"}, False, True),
            ({"Accept-Encoding": "*"}, False, True),
        ]
        for headers, openmetrics, gzipped in cases:
            headers.setdefault("Accept-Encoding", "identity")
            response = scrape(server, **headers)
            assert response.status_code == 200
            kind = response.headers["content-type"]
            assert kind.startswith("application/openmetrics-text") is openmetrics, headers
            assert response.text.endswith("# EOF\n") is openmetrics, headers
            assert (response.headers.get("content-encoding") == "gzip") is gzipped, headers
            assert 'saas_backup_up{source="datto"} 1' in response.text

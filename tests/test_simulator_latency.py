"""The simulator answers at a real vendor's pace: latency per route, and no Nagle delay on top."""

from __future__ import annotations

import argparse
import math
import os
import socket
import time

import httpx
import pytest

from exporter.simulator.app import Simulator
from exporter.simulator.serve import add_arguments, listening_socket, parse_latency, run_from_args
from tests.conftest import ServerThread, served_simulator

AUTH = ("demo-public", "demo-private")


def server_end_nodelay(client: socket.socket) -> int:
    """TCP_NODELAY on the server's end of ``client``'s connection. The server runs in this
    process, so its accepted socket is one of our descriptors: the one whose peer is us."""
    us = client.getsockname()
    for name in os.listdir("/dev/fd"):
        try:
            fd = os.dup(int(name))
        except OSError:
            continue  # the descriptor listdir itself used, closed by now
        try:
            candidate = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            continue
        with candidate:
            try:
                if candidate.type == socket.SOCK_STREAM and candidate.getpeername() == us:
                    return candidate.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                continue
    raise AssertionError(f"no socket in this process is connected to {us}")


def nodelay_of_a_connection(url: str) -> int:
    host, _, port = url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(b"GET /_sim/stats HTTP/1.1\r\nHost: sim\r\n\r\n")
        # An answer means the server has accepted the connection and set up its transport.
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        return server_end_nodelay(client)


def test_the_listening_socket_disables_nagle() -> None:
    with listening_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_accepted_connections_disable_nagle(sim_server: tuple[Simulator, ServerThread]) -> None:
    _, server = sim_server
    assert nodelay_of_a_connection(server.url) != 0
    with served_simulator(Simulator(customers=1, seats_per_customer=1)) as url:
        assert nodelay_of_a_connection(url) != 0


def elapsed(client: httpx.Client, path: str) -> float:
    started = time.monotonic()
    assert client.get(path).status_code == 200
    return time.monotonic() - started


def test_latency_applies_to_its_route(sim_server: tuple[Simulator, ServerThread]) -> None:
    sim, server = sim_server
    seats = f"/v1/saas/{sim.fleet.customers[0].id}/seats"
    applications = f"/v1/saas/{sim.fleet.customers[0].id}/applications"
    with httpx.Client(base_url=server.url, auth=AUTH, timeout=10) as client:
        client.get("/v1/saas/domains")  # the connection is open before anything is timed
        sim.set_latency({"domains": 300})
        slow = elapsed(client, "/v1/saas/domains")
        assert slow >= 0.3
        assert elapsed(client, seats) < slow
        sim.set_latency({"seats": 0, "*": 300})
        slow = elapsed(client, applications)
        assert slow >= 0.3
        assert elapsed(client, seats) < slow
        sim.set_latency(300)
        assert elapsed(client, seats) >= 0.3


def test_latency_figures_and_their_errors() -> None:
    assert Simulator(customers=1, seats_per_customer=1).latency == {"*": 0.0}
    assert Simulator(customers=1, seats_per_customer=1, latency_ms=250).latency == {"*": 250.0}
    sim = Simulator(customers=1, seats_per_customer=1, latency_ms={"seats": 400, "*": 50})
    assert sim.latency == {"seats": 400.0, "*": 50.0}
    with pytest.raises(ValueError, match="unknown route 'users'"):
        Simulator(customers=1, seats_per_customer=1, latency_ms={"users": 5})
    for bad in (-1, math.nan, math.inf):
        with pytest.raises(ValueError, match=f"latency seats={bad!r}: not a number"):
            sim.set_latency({"domains": 1, "seats": bad})
    assert sim.latency == {"seats": 400.0, "*": 50.0}, "a refused latency changes nothing"


def test_parse_latency() -> None:
    assert parse_latency("250") == 250.0
    assert parse_latency("seats=500, applications=190,domains=340,*=50") == {
        "seats": 500.0,
        "applications": 190.0,
        "domains": 340.0,
        "*": 50.0,
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fast", "'fast': not a number"),
        ("seats=fast", "'seats=fast': not a number"),
        ("seats=1,domains", "'domains': expected ROUTE=MS"),
        ("=5", "'=5': expected ROUTE=MS"),
        ("seats=1,seats=2", "route 'seats' given twice"),
    ],
)
def test_bad_latency_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_latency(spec)


@pytest.mark.parametrize(
    ("spec", "named"),
    [("users=5", "unknown route 'users'"), ("seats=fast", "seats=fast"), ("-5", "*=-5.0")],
)
def test_cli_refuses_a_bad_latency(
    spec: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run_from_args(parser.parse_args([f"--latency-ms={spec}"])) == 2
    assert named in capsys.readouterr().err

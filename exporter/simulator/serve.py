"""Serving the simulator: on its own from the command line, or beside the exporter in the demo."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable

import uvicorn

from exporter.simulator import scenarios
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.scenarios import SCENARIOS


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn to serve on, whose connections send small writes at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio turns Nagle off on an accepted socket only if its proto is IPPROTO_TCP, which it
    # inherits from this one; with proto 0, h11's separate header and body sends meet the
    # client's delayed ACK and every answer takes ~40 ms more.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it on Linux, whatever the event loop does.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def parse_latency(spec: str) -> float | dict[str, float]:
    """`250`, or `ROUTE=MS,...` with `*` for the other routes; route names are checked by
    the simulator."""
    if "=" not in spec:
        return _milliseconds(spec, spec)
    latency: dict[str, float] = {}
    for item in spec.split(","):
        route, sep, ms = (part.strip() for part in item.partition("="))
        if not sep or not route:
            raise ValueError(f"--latency-ms {item!r}: expected ROUTE=MS")
        if route in latency:
            raise ValueError(f"--latency-ms: route {route!r} given twice")
        latency[route] = _milliseconds(item, ms)
    return latency


def _milliseconds(item: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--latency-ms {item!r}: not a number of milliseconds") from None


async def serve(
    sim: Simulator, host: str, port: int, *, ready: Callable[[str], object] | None = None
) -> None:
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        sim.app(),
        log_config=None,
        access_log=False,
        lifespan="off",
        # A hanging fault must not hold up shutdown.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.01)
        if ready is not None:
            shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
            ready(f"http://{shown}:{bound}")
        # Shielded so that cancelling serve() (how the demo stops it) shuts uvicorn down
        # gracefully instead of tearing it down mid-request.
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        if not task.done():
            await asyncio.wait([task], timeout=5)
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1)
        sock.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:10050", help="HOST:PORT")
    parser.add_argument("--customers", type=int, default=12)
    parser.add_argument("--seats-per-customer", type=int, default=25)
    parser.add_argument(
        "--latency-ms",
        default="0",
        metavar="MS|ROUTE=MS,...",
        help="delay before each answer, for every route or per route with * for the rest, "
        "e.g. seats=500,applications=190,domains=340,*=50: real per-call times (seats "
        "38-60 s, applications ~19 s, domains ~34 s) scaled 1/100",
    )
    parser.add_argument(
        "--faults",
        nargs="*",
        default=[],
        metavar="SPEC",
        help="e.g. 504@seats?min_seats=40 429@domains?retry_after=2&times=1",
    )
    parser.add_argument("--shape", choices=["spec", "live", "mixed"], default="mixed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="demo",
        help="demo: a bit of everything; healthy: nothing to alert on; "
        "incident: stale seats, a failed restore, a 20-hour backup",
    )
    parser.add_argument("--public-key", default="demo-public")
    parser.add_argument("--private-key", default="demo-private")
    parser.add_argument(
        "--budget", type=int, default=100_000, help="API budget per window, where a vendor has one"
    )
    parser.add_argument(
        "--budget-window",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="length of a budget window, counted from the simulator's start",
    )
    parser.add_argument(
        "--no-budget-headers",
        dest="budget_headers",
        action="store_false",
        help="enforce the budget with 429s but send no X-API-Limit-* headers",
    )
    parser.add_argument("--client-id", default="demo-client", help="for OAuth-style vendors")
    parser.add_argument("--client-secret", default="demo-secret", help="for OAuth-style vendors")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="access token lifetime")


def run_from_args(args: argparse.Namespace) -> int:
    host, _, port = args.listen.rpartition(":")
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        print(f"--listen {args.listen!r}: expected HOST:PORT", file=sys.stderr)
        return 2
    host = host.strip("[]") or "127.0.0.1"
    try:
        sim = Simulator(
            customers=args.customers,
            seats_per_customer=args.seats_per_customer,
            seed=args.seed,
            shape=args.shape,
            latency_ms=parse_latency(args.latency_ms),
            faults=[parse_fault(spec) for spec in args.faults],
            public_key=args.public_key,
            private_key=args.private_key,
            budget=args.budget,
            budget_window_seconds=args.budget_window,
            budget_headers=args.budget_headers,
            client_id=args.client_id,
            client_secret=args.client_secret,
            token_ttl=args.token_ttl,
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2

    scenarios.apply(sim, args.scenario)

    def announce(url: str) -> None:
        keys = sim.credentials
        print(f"vendor API simulator: {url}", flush=True)
        print(f"  vendors: {', '.join(sim.parts)}", flush=True)
        print(f"  public_key={keys.public_key} private_key={keys.private_key}", flush=True)
        print(f"  client_id={keys.client_id} client_secret={keys.client_secret}", flush=True)

    try:
        asyncio.run(serve(sim, host, int(port), ready=announce))
    except OSError as exc:
        print(f"simulator: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it caught once it has shut down: Ctrl-C is the way out.
        pass
    return 0

"""Command line: run the exporter, check a config, run the demo or the simulator alone."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import stamina.instrumentation
import uvicorn

from exporter import __version__, logs, seatcli, vendors
from exporter.app import build_app
from exporter.config import Config, ConfigError, build_config, load_config
from exporter.config_errors import print_problems
from exporter.filters import CustomerMatcher, filter_summary
from exporter.limits import server_options
from exporter.persist import saved_customer_lists
from exporter.plan import describe, plan_source
from exporter.reload import install_sighup
from exporter.server import parse_listen_address
from exporter.simulator.app import Simulator
from exporter.simulator.serve import add_arguments as add_simulator_arguments
from exporter.simulator.serve import run_from_args as run_simulator
from exporter.simulator.serve import serve as serve_simulator
from exporter.webconfig import LiveWebConfig, WebConfig, load_web_config

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = ":10049"
ASSUMED_CUSTOMERS = 100


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saas-backup-exporter",
        description="Prometheus exporter for SaaS backup health ("
        + ", ".join(vendors.names())
        + ").",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config.file", dest="config_file", type=Path, help="YAML config file")
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the config file, print every problem, exit 0 (valid) or 1; "
        "a valid one's plan: the calls per hour its TTLs need against the budget",
    )
    parser.add_argument(
        "--plan.customers",
        dest="plan_customers",
        type=int,
        default=None,
        metavar="N",
        help="customers per source for --config.check's plan (default: as many as the "
        f"state file holds, else {ASSUMED_CUSTOMERS})",
    )
    _common(parser)
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="TLS, basic auth, response headers and rate limit, in the exporter-toolkit's web "
        "config format; re-read when it changes",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="POST /-/reload reloads the config, as SIGHUP does (off: it answers 403)",
    )
    commands = parser.add_subparsers(dest="command", metavar="{demo,simulator,seats}")
    demo = commands.add_parser("demo", help="run the exporter against the built-in simulator")
    _common(demo)
    demo.add_argument("--customers", type=int, default=12)
    demo.add_argument("--seats-per-customer", type=int, default=25)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--shape",
        choices=["live", "spec", "mixed"],
        default="live",
        help="the vendor API shapes the simulator serves (default: live, what users have)",
    )
    simulator = commands.add_parser("simulator", help="run the vendor API simulator alone")
    add_simulator_arguments(simulator)
    seatcli.add_parser(commands)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=argparse.SUPPRESS,
        help=f"address to serve on (default {DEFAULT_LISTEN})",
    )
    logs.add_flags(parser)


def _plan(config: Config, customers: int | None) -> list[str]:
    lists = saved_customer_lists(config)
    lines = ['plan (sizing: see the README\'s "Sizing for a real fleet"):']
    for settings in config.sources:
        listed = lists.get(settings.name)
        keep = CustomerMatcher(settings.customers)
        kept = keep.count(listed) if listed is not None else None
        count = customers if customers is not None else kept
        plan = plan_source(settings, config.cache, ASSUMED_CUSTOMERS if count is None else count)
        described = describe(plan, settings.budget.reserve_ratio)
        if count is None:
            described[0] += " (assumed; set --plan.customers)"
        lines += [f"  {line}" for line in described]
        if keep.active:
            lines.append(f"    {filter_summary(kept, listed)}")
    return lines


def uvicorn_config(app: Any, listen: str, config: Config, **extra: Any) -> uvicorn.Config:
    host, port = parse_listen_address(listen)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # Bounded requests, connections and header reads: see exporter.limits.
        **server_options(config.web),
        timeout_graceful_shutdown=3,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        **extra,
    )


def demo_config(
    base_url: str,
    sim: Simulator,
    *,
    ttl_seconds: float = 60,
    state_file: Path | None = None,
    **overrides: Any,
) -> Config:
    """One source per registered vendor, each named after its vendor, all against ``sim``;
    ``overrides`` apply to every source."""
    common = {
        "base_url": base_url,
        "timeout_seconds": 20,
        "refresh_timeout_seconds": 60,
        **overrides,
    }
    return build_config(
        {
            "cache": {"ttl_seconds": ttl_seconds, "state_file": state_file},
            "sources": [
                {"name": v.name, "type": v.name, **common, **v.demo(sim.credentials)}
                for v in vendors.all()
                if v.name in sim.parts
            ],
        }
    )


async def _demo(args: argparse.Namespace) -> int:
    sim = Simulator(
        customers=args.customers,
        seats_per_customer=args.seats_per_customer,
        seed=args.seed,
        shape=args.shape,
    )
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    sim_task = asyncio.create_task(serve_simulator(sim, "127.0.0.1", 0, ready=started.set_result))
    base_url = await started
    # A state file like a real deployment's, gone with the demo.
    state_dir = tempfile.TemporaryDirectory(prefix="saas-backup-demo-")
    config = demo_config(base_url, sim, state_file=Path(state_dir.name) / "state.db")
    listen = getattr(args, "listen_address", DEFAULT_LISTEN)
    host, port = parse_listen_address(listen)
    shown = "localhost" if host in {"0.0.0.0", "::", "127.0.0.1"} else host
    print(f"simulator (vendor APIs): {base_url}", flush=True)
    print(f"exporter:                http://{shown}:{port}/", flush=True)
    print(f"metrics:                 http://{shown}:{port}/metrics", flush=True)
    server = uvicorn.Server(uvicorn_config(build_app(config), listen, config))
    try:
        await server.serve()
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
        state_dir.cleanup()
    return 0


async def _serve(
    args: argparse.Namespace, config: Config, listen: str, web: WebConfig | None
) -> int:
    logs.redact.register(config.secrets())
    live = LiveWebConfig(web) if web is not None else None
    app = build_app(config, web=live, config_file=args.config_file, lifecycle=args.enable_lifecycle)
    install_sighup(app.state.reloader)
    settings = uvicorn_config(app, listen, config)
    if live is not None and web is not None and web.tls is not None:
        settings.load()
        # Set after load(), which builds no context of its own without ssl_certfile: each new
        # connection gets the context of the web config in force.
        settings.ssl = live.ssl_context()
    server = uvicorn.Server(settings)
    await server.serve()
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = getattr(args, "log_level", "info")
    logs.setup("warning" if level == "warn" else level, getattr(args, "log_format", "logfmt"))
    # stamina would otherwise count retries in prometheus_client's global registry and log
    # them in its own format; our client logs its retries itself.
    stamina.instrumentation.set_on_retry_hooks([])

    try:
        return _run(args)
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl-C it handled once its server has stopped.
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return asyncio.run(_demo(args))
    if args.command == "simulator":
        return run_simulator(args)
    if args.command == "seats":
        return seatcli.run(args)
    if args.config_file is None:
        print(
            "saas-backup-exporter: --config.file is required (or use: demo, simulator, seats)",
            file=sys.stderr,
        )
        return 2
    # Both files are checked, whatever the first one holds, so that one run lists every problem.
    web: WebConfig | None = None
    web_problems: list[str] = []
    if args.web_config_file is not None:
        try:
            web = load_web_config(args.web_config_file)
        except ConfigError as exc:
            web_problems = exc.problems
    try:
        config = load_config(args.config_file)
        listen = getattr(args, "listen_address", DEFAULT_LISTEN)
        parse_listen_address(listen)
    except ConfigError as exc:
        print_problems(args.config_file, "configuration", exc.problems)
        print_problems(args.web_config_file, "web configuration", web_problems)
        return 1
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        print_problems(args.web_config_file, "web configuration", web_problems)
        return 1
    if web_problems:
        print_problems(args.web_config_file, "web configuration", web_problems)
        return 1
    if args.config_check:
        names = ", ".join(s.name for s in config.sources)
        print(f"{args.config_file}: OK ({len(config.sources)} sources: {names})")
        if web is not None:
            print(f"{args.web_config_file}: OK ({web.describe()})")
        for line in _plan(config, args.plan_customers):
            print(line)
        return 0
    return asyncio.run(_serve(args, config, listen, web))

"""The ``seats`` command: list a customer's seats as the vendor reports them now, and license,
pause or unlicense them, as a dry run unless ``--apply`` is given.

It reads the exporter's own config file (secrets through the same ``*_file`` settings) and
talks through the same HTTP client: the source's budget, retries and ``Retry-After`` apply.

Exit codes: 0 done (or a dry run); 1 a seat or a request failed; 2 bad input, nothing changed;
3 sent, but some seats do not show their new state yet; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, TextIO

from exporter import logs
from exporter.config import ConfigError, load_config
from exporter.config_errors import print_problems
from exporter.http import VendorError
from exporter.model import LICENSE_STATES
from exporter.seats import (
    ACTIONS,
    CHANGED,
    FAILED,
    NOT_SENT,
    PENDING,
    SKIPPED,
    BadInput,
    Outcome,
    Plan,
    SeatManager,
    SeatRow,
    Selection,
    Waiting,
    apply,
    audit,
    exit_code,
    find_customer,
    make_plan,
    manager_for,
    parse_ids,
    parse_states,
    parse_where,
    seat_type_word,
    select,
)
from exporter.settings import SourceBase

logger = logging.getLogger(__name__)

BAD_INPUT: Final = 2
INTERRUPTED: Final = 130
BAR: Final = 30
CONFIRM_ABOVE: Final = 10


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    seats = commands.add_parser(
        "seats",
        help="list a customer's seats; license, pause or unlicense them (a dry run unless --apply)",
    )
    actions = seats.add_subparsers(dest="seats_command", metavar="{list,change}", required=True)
    listing = actions.add_parser("list", help="the customer's seats as the vendor reports them")
    _common(listing)
    listing.add_argument(
        "--state",
        help=f"only seats in these license states, comma-separated ({', '.join(LICENSE_STATES)})",
    )
    listing.add_argument("--output", choices=["table", "json", "csv"], default="table")
    change = actions.add_parser(
        "change", help="license, pause or unlicense seats: prints the plan; --apply executes it"
    )
    _common(change)
    change.add_argument("--action", required=True, choices=list(ACTIONS))
    which = change.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", metavar="ID,...", help="seat ids, comma-separated")
    which.add_argument(
        "--ids-file",
        type=Path,
        metavar="PATH",
        help="seat ids, one a line or comma-separated ('-': stdin)",
    )
    which.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="the seats in a license state: state=unlicensed[,paused]; type=TYPE narrows",
    )
    change.add_argument("--apply", action="store_true", help="make the changes")
    change.add_argument(
        "--yes", action="store_true", help="unlicense more than --confirm-above seats unasked"
    )
    change.add_argument(
        "--confirm-above",
        type=int,
        default=CONFIRM_ABOVE,
        metavar="N",
        help=f"unlicensing more seats asks for --yes or a typed confirmation (default "
        f"{CONFIRM_ABOVE})",
    )
    change.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep re-reading the seats until they show their new state, this long at most",
    )
    change.add_argument("--wait-interval", type=float, default=15.0, metavar="SECONDS")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config.file",
        dest="seats_config_file",
        type=Path,
        metavar="PATH",
        help="the exporter's YAML config file",
    )
    parser.add_argument(
        "--source", required=True, metavar="NAME", help="the source's name in the config"
    )
    parser.add_argument(
        "--customer", required=True, metavar="ID|NAME", help="the customer's id, name or domain"
    )
    parser.add_argument(
        "--type",
        dest="seat_type",
        metavar="TYPE",
        help="the seat type (User, SharedMailbox, ...; any case, or as the seat_type label)",
    )
    logs.add_flags(parser)


def run(args: argparse.Namespace) -> int:
    # The audit trail is written whatever --log.level says.
    audit.setLevel(logging.INFO)
    config_file = args.seats_config_file or getattr(args, "config_file", None)
    if config_file is None:
        _error("--config.file is required")
        return BAD_INPUT
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        print_problems(config_file, "configuration", exc.problems)
        return BAD_INPUT
    logs.redact.register(config.secrets())
    settings = next((s for s in config.sources if s.name == args.source), None)
    if settings is None:
        names = ", ".join(s.name for s in config.sources)
        _error(f"no source {args.source!r} in {config_file} (sources: {names})")
        return BAD_INPUT
    try:
        return asyncio.run(_main(args, settings))
    except KeyboardInterrupt:
        _error("interrupted: requests already sent stand; `seats list` shows the states now")
        return INTERRUPTED


def _error(message: str) -> None:
    print(f"seats: {message}", file=sys.stderr)


async def _main(args: argparse.Namespace, settings: SourceBase) -> int:
    manager: SeatManager | None = None
    try:
        # Before any call: a bad selection is refused at once.
        selection = _selection(args) if args.seats_command == "change" else Selection()
        manager = manager_for(settings)
        if args.seats_command == "list":
            return await _list(args, manager)
        return await _change(args, settings.name, manager, selection)
    except BadInput as exc:
        _error(str(exc))
        return BAD_INPUT
    except VendorError as exc:
        _error(str(exc))
        return 1
    finally:
        if manager is not None:
            await manager.aclose()


def _selection(args: argparse.Namespace) -> Selection:
    if args.where is not None:
        where = parse_where(args.where)
        if where.states is None:
            raise BadInput("--where needs state=..., e.g. state=unlicensed")
        if args.seat_type and where.seat_type and args.seat_type != where.seat_type:
            raise BadInput("--type and --where type= differ")
        return Selection(states=where.states, seat_type=args.seat_type or where.seat_type)
    if args.ids is not None:
        return Selection(ids=parse_ids([args.ids]), seat_type=args.seat_type)
    path: Path = args.ids_file
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BadInput(f"--ids-file {path}: cannot read it ({reason})") from None
    except UnicodeDecodeError:
        raise BadInput(f"--ids-file {path}: not UTF-8 text") from None
    return Selection(ids=parse_ids([text]), seat_type=args.seat_type)


def _cell(text: str) -> str:
    """Vendor text on a terminal: no control character reaches it."""
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    cells = [[_cell(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


async def _list(args: argparse.Namespace, manager: SeatManager) -> int:
    states = parse_states(args.state) if args.state else None
    customer = find_customer(await manager.customers(), args.customer)
    rows = await manager.seats(customer)
    if args.seat_type:
        word = seat_type_word(args.seat_type, [*manager.seat_types, *{r.seat_type for r in rows}])
        if word is None:
            raise BadInput(f"seat type {args.seat_type!r}: not one of {manager.seat_types}")
        rows = [r for r in rows if r.seat_type == word]
    if states is not None:
        rows = [r for r in rows if r.state in states]
    fields = ("id", "name", "type", "state", "vendor_state")
    values = [(r.id, r.name, r.seat_type, r.state, r.vendor_state) for r in rows]
    out = sys.stdout
    if args.output == "json":
        document = {
            "customer": {"id": customer.id, "name": customer.name, "domain": customer.domain},
            "seats": [dict(zip(fields, v, strict=True)) for v in values],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False), file=out)
    elif args.output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows([[_cell(c) for c in v] for v in values])
        out.write(buffer.getvalue())
    else:
        print(f"customer {customer.id} {customer.name} ({customer.domain})", file=out)
        _table([f.upper().replace("_", " ") for f in fields], values, out)
        counts = Counter(r.state for r in rows)
        summary = ", ".join(f"{counts[s]} {s}" for s in LICENSE_STATES if counts[s])
        print(f"{len(rows)} seats" + (f": {summary}" if summary else ""), file=out)
    return 0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _print_plan(plan: Plan, manager: SeatManager, source: str, out: TextIO) -> None:
    customer = plan.customer
    print(f"source {source}, request style {manager.describe()}", file=out)
    print(f"customer {customer.id} {customer.name} ({customer.domain})", file=out)
    print(f"action {plan.action}: seats become {plan.target}", file=out)
    rows = []
    for seat in plan.seats:
        change = f"-> {plan.target}"
        if seat.state == plan.target:
            change = f"skip: already {plan.target}"
        elif seat.id in plan.blocked:
            change = f"cannot: {plan.blocked[seat.id]}"
        rows.append((seat.id, seat.name, seat.seat_type, seat.state, change))
    if rows:
        _table(["SEAT", "NAME", "TYPE", "STATE", "CHANGE"], rows, out)
    changing, skipped = len(plan.to_change), len(plan.skipped)
    cannot = f", {len(plan.blocked)} cannot be changed" if plan.blocked else ""
    print(
        f"{_plural(len(plan.seats), 'seat')} selected: {changing} to change in "
        f"{_plural(len(plan.batches), 'request')} (at most {manager.max_batch} ids and one "
        f"seat type each), {skipped} already {plan.target} (skipped){cannot}",
        file=out,
    )
    caution = manager.caution(plan.action)
    if caution and changing:
        print(f"note: {caution}", file=out)


def _confirm(args: argparse.Namespace, plan: Plan, manager: SeatManager) -> None:
    count = len(plan.to_change)
    if plan.action != "unlicense" or count <= args.confirm_above or args.yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise BadInput(
            f"unlicensing {count} seats (more than {args.confirm_above}) needs --yes, or a "
            "typed confirmation on a terminal; nothing was changed"
        )
    phrase = f"unlicense {count}"
    caution = manager.caution(plan.action)
    if caution:
        print(f"{caution}.", file=sys.stderr)
    print(
        f"Type {phrase!r} to unlicense {count} seats of {_cell(plan.customer.name)}: ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    if sys.stdin.readline().strip() != phrase:
        raise BadInput("not confirmed; nothing was changed")


class Progress:
    """A bar on a terminal, plain lines otherwise; on standard error, beside the log."""

    def __init__(self, plan: Plan, stream: TextIO) -> None:
        self.requests = len(plan.batches)
        self.seats = sum(len(b) for b in plan.batches)
        self.done_requests = 0
        self.done_seats = 0
        self.stream = stream
        self.tty = stream.isatty()

    def _draw(self, note: str) -> None:
        filled = BAR * self.done_seats // max(self.seats, 1)
        bar = "#" * filled + "." * (BAR - filled)
        self.stream.write(
            f"\r\x1b[K[{bar}] {self.done_requests}/{self.requests} requests, "
            f"{self.done_seats}/{self.seats} seats  {note}"
        )
        self.stream.flush()

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def sending(self, index: int, batch: Sequence[SeatRow]) -> None:
        what = f"request {index + 1}/{self.requests}: {_plural(len(batch), 'seat')}"
        if self.tty:
            self._draw(f"sending {what}")
        else:
            self._line(f"sending {what} ({batch[0].seat_type})")

    def sent(self, index: int, batch: Sequence[SeatRow], outcomes: Mapping[str, Outcome]) -> None:
        self.done_requests += 1
        self.done_seats += len(batch)
        if self.tty:
            # The request's audit line comes next: it starts on a clean line.
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            return
        counts = Counter(o.status for o in outcomes.values())
        told = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self._line(
            f"sent request {index + 1}/{self.requests}: {told or 'accepted, to be confirmed'}"
        )

    def confirming(self, seats: int) -> None:
        self._line(f"reading the seats again to confirm {_plural(seats, 'seat')}")

    def finish(self) -> None:
        if self.tty:
            self._draw("done")
            self.stream.write("\n")
            self.stream.flush()


async def _change(
    args: argparse.Namespace, source: str, manager: SeatManager, selection: Selection
) -> int:
    out = sys.stdout
    customer = find_customer(await manager.customers(), args.customer)
    refusal = manager.refusal(customer, args.action)
    if refusal:
        raise BadInput(refusal)
    chosen = select(await manager.seats(customer), selection, manager.seat_types)
    plan = make_plan(customer, args.action, chosen, manager.max_batch, manager.impossible)
    _print_plan(plan, manager, source, out)
    if not args.apply:
        print("dry run: nothing was changed; add --apply to make these changes", file=out)
        return 0
    if not plan.batches:
        print("nothing to change", file=out)
        return 1 if plan.blocked else 0
    _confirm(args, plan, manager)
    progress = Progress(plan, sys.stderr)
    waiting = Waiting(max(args.wait, 0.0), max(args.wait_interval, 0.1))
    outcomes = await apply(manager, plan, progress, source=source, waiting=waiting)
    progress.finish()
    _print_outcomes(plan, outcomes, manager, out)
    return exit_code(outcomes)


def _print_outcomes(
    plan: Plan, outcomes: Mapping[str, Outcome], manager: SeatManager, out: TextIO
) -> None:
    rows: list[tuple[str, ...]] = []
    for seat in plan.seats:
        outcome = outcomes.get(seat.id, Outcome(NOT_SENT))
        rows.append((seat.id, seat.name, seat.state, outcome.status, outcome.message))
    _table(["SEAT", "NAME", "WAS", "OUTCOME", "MESSAGE"], rows, out)
    counts: Counter[str] = Counter(o.status for o in outcomes.values())
    told = ", ".join(f"{s} {counts[s]}" for s in (CHANGED, SKIPPED, FAILED, PENDING, NOT_SENT))
    print(
        f"{told} ({_plural(len(plan.batches), 'request')}, request style "
        f"{manager.describe().partition(':')[0]})",
        file=out,
    )

"""Seat management, vendor-neutral: which seats a change touches, in which requests, and what
became of each seat.

A vendor offers seat management with a ``seatchange`` module in its package
(``exporter/vendors/<vendor>/seatchange.py``) whose ``manager(settings)`` returns a
``SeatManager``; ``manager_for`` finds it, so that this module and the command line in
``exporter.seatcli`` name no vendor.

Changes are idempotent: seats already in the target state are skipped, so a run may be repeated.
A vendor may apply a change later than it answers: a seat the answer says nothing about is read
again, and one that does not show its new state yet is "not yet confirmed", never "failed".
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from exporter import vendors
from exporter.http import VendorError
from exporter.model import LICENSE_STATES, snake_case
from exporter.settings import SourceBase

logger = logging.getLogger(__name__)
# Its own logger, so that a deployment can route the audit trail apart from the rest.
audit = logging.getLogger(f"{__name__}.audit")

# The command's action -> the normalized license state it leads to.
ACTIONS: Final = {"license": "licensed", "pause": "paused", "unlicense": "unlicensed"}

SKIPPED: Final = "skipped"
CHANGED: Final = "changed"
PENDING: Final = "not yet confirmed"
FAILED: Final = "failed"
NOT_SENT: Final = "not sent"
# Statuses whose answer means the request was refused as a whole: the rest would be too.
REFUSED_WHOLE: Final = frozenset({401, 403})


class BadInput(Exception):
    """The command cannot go on as asked; nothing was changed. The message says why."""


@dataclass(frozen=True, slots=True)
class ManagedCustomer:
    id: str
    name: str
    domain: str
    # Normalized, as the customer_info series has it.
    product: str


@dataclass(frozen=True, slots=True)
class SeatRow:
    id: str
    name: str
    # The vendor's own word, sent back exactly as given: vendors compare it case-sensitively.
    seat_type: str
    # Normalized, as the saas_backup_seats series has it.
    state: str
    vendor_state: str


@dataclass(frozen=True, slots=True)
class ChangeReply:
    """One request's answer: per seat, where the vendor said, whether it worked and why."""

    results: Mapping[str, tuple[bool, str]] = field(default_factory=dict)


class SeatManager(Protocol):
    """One source's seat management."""

    # Ids per request.
    max_batch: int
    # The vendor's seat type words.
    seat_types: tuple[str, ...]

    def describe(self) -> str:
        """How changes are sent (the request style), for people to read."""
        ...

    async def customers(self) -> list[ManagedCustomer]: ...

    async def seats(self, customer: ManagedCustomer) -> list[SeatRow]: ...

    def refusal(self, customer: ManagedCustomer, action: str) -> str | None:
        """Why this customer's seats cannot take this action at this vendor; None: they can."""
        ...

    def impossible(self, seat: SeatRow, action: str) -> str | None:
        """Why the vendor offers no such change from this seat's state; None: it may."""
        ...

    def caution(self, action: str) -> str | None:
        """What people must know before this action, in the vendor's terms."""
        ...

    async def change(
        self, customer: ManagedCustomer, action: str, seat_type: str, ids: Sequence[str]
    ) -> ChangeReply:
        """One request; raises ``VendorError`` when it fails as a whole."""
        ...

    async def aclose(self) -> None: ...


def manager_for(settings: SourceBase) -> SeatManager:
    module_name = f"{vendors.__name__}.{settings.vendor}.seatchange"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise BadInput(
            f"source {settings.name!r} (type {settings.vendor}) has no seat management"
        ) from None
    manager: SeatManager = module.manager(settings)
    return manager


def find_customer(customers: Sequence[ManagedCustomer], wanted: str) -> ManagedCustomer:
    """By id, else by name, else by domain (names and domains ignoring case)."""
    text = wanted.strip()
    folded = text.casefold()
    keys: list[Callable[[ManagedCustomer], bool]] = [
        lambda c: c.id == text,
        lambda c: c.name.casefold() == folded,
        lambda c: bool(c.domain) and c.domain.casefold() == folded,
    ]
    for key in keys:
        found = [c for c in customers if key(c)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = ", ".join(c.id for c in found)
            raise BadInput(f"{len(found)} customers are called {text!r} (ids {ids}): give an id")
    raise BadInput(
        f"no customer {text!r} among the source's {len(customers)} customers "
        "(give a customer id, name or domain as the vendor lists it)"
    )


@dataclass(frozen=True, slots=True)
class Selection:
    ids: tuple[str, ...] | None = None
    states: frozenset[str] | None = None
    seat_type: str | None = None


def parse_states(text: str) -> frozenset[str]:
    states = frozenset(s.strip().lower() for s in text.split(",") if s.strip())
    unknown = sorted(states - set(LICENSE_STATES))
    if unknown or not states:
        raise BadInput(
            f"state {','.join(unknown) or text!r}: not one of {', '.join(LICENSE_STATES)}"
        )
    return states


def parse_where(conditions: Iterable[str]) -> Selection:
    """``state=unlicensed[,paused]`` and ``type=User``, each at most once."""
    states: frozenset[str] | None = None
    seat_type: str | None = None
    for condition in conditions:
        key, sep, value = condition.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            raise BadInput(f"--where {condition!r}: expected KEY=VALUE, e.g. state=unlicensed")
        if key == "state" and states is None:
            states = parse_states(value)
        elif key == "type" and seat_type is None:
            seat_type = value.strip()
        elif key in ("state", "type"):
            raise BadInput(f"--where {key}= given twice")
        else:
            raise BadInput(f"--where {key}=: unknown key (state or type)")
    return Selection(states=states, seat_type=seat_type)


def parse_ids(texts: Iterable[str]) -> tuple[str, ...]:
    """Ids separated by commas or lines; ``#`` starts a comment. Each id once, in order."""
    ids: dict[str, None] = {}
    for text in texts:
        for line in text.splitlines():
            for part in line.partition("#")[0].split(","):
                if part.strip():
                    ids.setdefault(part.strip(), None)
    if not ids:
        raise BadInput("no seat ids given")
    return tuple(ids)


def seat_type_word(given: str, known: Iterable[str]) -> str | None:
    """The vendor's word for a seat type given in any case, or as the metrics' label
    (``shared_mailbox``); None when no known type matches."""

    def key(word: str) -> str:
        return snake_case(word).replace("_", "")

    return next((word for word in known if key(word) == key(given)), None)


def select(
    seats: Sequence[SeatRow], selection: Selection, vendor_types: Iterable[str]
) -> list[SeatRow]:
    """The seats a change is for, all of one type; a bad selection is ``BadInput``."""
    present = {s.seat_type for s in seats}
    type_word = None
    if selection.seat_type is not None:
        type_word = seat_type_word(selection.seat_type, [*vendor_types, *sorted(present)])
        if type_word is None:
            raise BadInput(
                f"seat type {selection.seat_type!r}: not one of {', '.join(vendor_types)}"
            )
    if selection.ids is not None:
        by_id = {s.id: s for s in seats}
        missing = [i for i in selection.ids if i not in by_id]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise BadInput(f"{len(missing)} seat ids are not seats of this customer: {shown}")
        chosen = [by_id[i] for i in selection.ids]
        if type_word is not None:
            other = [s.id for s in chosen if s.seat_type != type_word]
            if other:
                shown = ", ".join(other[:10]) + (" ..." if len(other) > 10 else "")
                raise BadInput(f"{len(other)} of the seats are not of type {type_word}: {shown}")
    else:
        chosen = [
            s
            for s in seats
            if (selection.states is None or s.state in selection.states)
            and (type_word is None or s.seat_type == type_word)
        ]
    types = Counter(s.seat_type for s in chosen)
    if len(types) > 1:
        counted = ", ".join(f"{word or 'unknown'}: {n}" for word, n in sorted(types.items()))
        raise BadInput(
            f"the seats are of {len(types)} types ({counted}); one request takes one type: "
            "choose one with --type"
        )
    if "" in types:
        raise BadInput("the vendor gives no seat type for these seats: they cannot be changed")
    return chosen


@dataclass(frozen=True, slots=True)
class Plan:
    customer: ManagedCustomer
    action: str
    seats: tuple[SeatRow, ...]
    batches: tuple[tuple[SeatRow, ...], ...]
    # Seat id -> why the vendor offers no such change for it: never sent, a failure.
    blocked: Mapping[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return ACTIONS[self.action]

    @property
    def skipped(self) -> list[SeatRow]:
        return [s for s in self.seats if s.state == self.target]

    @property
    def to_change(self) -> list[SeatRow]:
        return [s for batch in self.batches for s in batch]


def make_plan(
    customer: ManagedCustomer,
    action: str,
    seats: Sequence[SeatRow],
    max_batch: int,
    impossible: Callable[[SeatRow, str], str | None] = lambda _seat, _action: None,
) -> Plan:
    """Batches of at most ``max_batch`` ids, one seat type each; seats already in the target
    state, and those the vendor offers no such change for, are in no batch."""
    target = ACTIONS[action]
    by_type: dict[str, list[SeatRow]] = {}
    blocked: dict[str, str] = {}
    for seat in seats:
        if seat.state == target:
            continue
        reason = impossible(seat, action)
        if reason is not None:
            blocked[seat.id] = reason
        else:
            by_type.setdefault(seat.seat_type, []).append(seat)
    batches = tuple(
        tuple(group[i : i + max_batch])
        for group in by_type.values()
        for i in range(0, len(group), max_batch)
    )
    return Plan(customer, action, tuple(seats), batches, blocked)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    message: str = ""


class Hooks(Protocol):
    """What the command line shows while a change runs."""

    def sending(self, index: int, batch: Sequence[SeatRow]) -> None: ...

    def sent(self, index: int, batch: Sequence[SeatRow], outcomes: Mapping[str, Outcome]) -> None:
        """Called before the request's audit line is logged."""
        ...

    def confirming(self, seats: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Waiting:
    """How long to keep re-reading seats that do not show their new state yet."""

    seconds: float = 0.0
    interval: float = 15.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic


def who() -> str:
    """The person (or service account) at the command line, for the audit trail."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = f"uid:{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


async def apply(
    manager: SeatManager,
    plan: Plan,
    hooks: Hooks,
    *,
    source: str,
    waiting: Waiting | None = None,
) -> dict[str, Outcome]:
    """Send the plan's batches one after another; each seat's outcome."""
    outcomes = {s.id: Outcome(SKIPPED, f"already {plan.target}") for s in plan.skipped}
    outcomes.update({i: Outcome(FAILED, f"not sent: {why}") for i, why in plan.blocked.items()})
    unconfirmed: list[str] = []
    # Seats of a request that failed without an answer (a timeout, a 5xx after the retries):
    # the vendor may have applied it all the same, so they are read again too.
    doubtful: dict[str, str] = {}
    person = who()
    stopped: str | None = None
    for index, batch in enumerate(plan.batches):
        ids = [s.id for s in batch]
        if stopped is not None:
            outcomes.update({i: Outcome(NOT_SENT, stopped) for i in ids})
            continue
        hooks.sending(index, batch)
        result = "accepted"
        try:
            reply = await manager.change(plan.customer, plan.action, batch[0].seat_type, ids)
        except VendorError as exc:
            error = str(exc)
            now = {i: Outcome(FAILED, error) for i in ids}
            result = "refused"
            if exc.status in REFUSED_WHOLE:
                stopped = f"not sent after an earlier request was refused ({error})"
            elif exc.status is None or exc.status >= 500:
                doubtful.update(dict.fromkeys(ids, error))
        else:
            error = ""
            now = {}
            for seat_id in ids:
                said = reply.results.get(seat_id)
                if said is None:
                    unconfirmed.append(seat_id)
                    continue
                ok, message = said
                now[seat_id] = Outcome(CHANGED if ok else FAILED, message)
            failed = sum(1 for o in now.values() if o.status == FAILED)
            if failed:
                result = "partial" if failed < len(ids) else "failed"
            elif len(now) == len(ids):
                result = "done"
        outcomes.update(now)
        hooks.sent(index, batch, now)
        audit.info(
            "msg=%s who=%s source=%s customer_id=%s action=%s seat_type=%s request=%s "
            "seats=%s outcome=%s failed=%s error=%s ids=%s",
            "seat change request",
            person,
            source,
            plan.customer.id,
            plan.action,
            batch[0].seat_type,
            f"{index + 1}/{len(plan.batches)}",
            len(ids),
            result,
            ",".join(i for i, o in now.items() if o.status == FAILED),
            error,
            ",".join(ids),
        )
    if unconfirmed or doubtful:
        found = await confirm(
            manager,
            plan,
            [*unconfirmed, *doubtful],
            hooks=hooks,
            waiting=waiting or Waiting(),
            person=person,
            source=source,
        )
        for seat_id, outcome in found.items():
            if seat_id not in doubtful:
                outcomes[seat_id] = outcome
            elif outcome.status == CHANGED:
                outcomes[seat_id] = Outcome(
                    CHANGED, f"{outcome.message}, though: {doubtful[seat_id]}"
                )
    return outcomes


async def confirm(
    manager: SeatManager,
    plan: Plan,
    ids: Sequence[str],
    *,
    hooks: Hooks,
    waiting: Waiting,
    person: str,
    source: str,
) -> dict[str, Outcome]:
    """Re-read the seats the answers said nothing about, until each shows its new state or the
    wait is over."""
    deadline = waiting.clock() + waiting.seconds
    left = list(ids)
    outcomes: dict[str, Outcome] = {}
    note = "the vendor may apply changes minutes later; run `seats list` again to see"
    while True:
        hooks.confirming(len(left))
        try:
            states = {s.id: s.state for s in await manager.seats(plan.customer)}
        except VendorError as exc:
            logger.warning("msg=%s error=%s", "could not re-read the seats to confirm", str(exc))
            note = f"could not re-read the seats ({exc})"
        else:
            for seat_id in left:
                if states.get(seat_id) == plan.target:
                    outcomes[seat_id] = Outcome(CHANGED, "confirmed by reading the seats again")
            left = [i for i in left if i not in outcomes]
        if not left or waiting.clock() + waiting.interval > deadline:
            break
        await waiting.sleep(waiting.interval)
    outcomes.update({i: Outcome(PENDING, note) for i in left})
    audit.info(
        "msg=%s who=%s source=%s customer_id=%s action=%s confirmed=%s unconfirmed=%s",
        "seat change confirmation",
        person,
        source,
        plan.customer.id,
        plan.action,
        ",".join(i for i in ids if i in outcomes and outcomes[i].status == CHANGED),
        ",".join(left),
    )
    return outcomes


def exit_code(outcomes: Mapping[str, Outcome]) -> int:
    """0: every seat changed or skipped; 1: one failed or was not sent; 3: none failed, but
    some do not show their new state yet."""
    statuses = {o.status for o in outcomes.values()}
    if statuses & {FAILED, NOT_SENT}:
        return 1
    if PENDING in statuses:
        return 3
    return 0

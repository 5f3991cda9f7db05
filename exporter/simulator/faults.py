"""Faults the simulator can inject: ``KIND@ROUTE[?key=value&...]``.

ROUTE is a route key that a vendor's simulator part declares (``seats``, ``token`` ...) or ``*``;
the simulator refuses a fault whose route none of its vendors serves.
``customer`` matches the route's first path parameter (a customer, instance or job id).
``link_cycle`` and ``cross_origin`` corrupt the ``next`` link of Link-paginated lists.

The hostile vendor's bodies: ``huge`` (``bytes=`` of JSON, its length declared), ``endless``
(a JSON array that never ends, no length), ``trickle`` (one byte every ``delay_ms``, ``bytes=``
in all), ``deep_json`` (arrays nested ``depth=`` deep), and ``rewrite`` (the route's real answer
passed through ``edit=``: ``duplicate`` every list's items, append a lone ``surrogate`` to every
string, make every number ``nan`` or ``negative``, or a ``wrong_shape`` body; tests may set any
``Fault.edit``). A streamed body counts what it sent in ``Fault.sent``.

``504@seats?min_seats=40``, ``429@domains?retry_after=2&times=1``, ``hang@*``,
``slow@applications?delay_ms=500``, ``malformed@seats?customer=1003``, ``401@*``,
``endless@seats``, ``trickle@domains?delay_ms=100``, ``rewrite@seats?edit=duplicate``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

KINDS: Final = (
    "401",
    "429",
    "500",
    "504",
    "malformed",
    "slow",
    "hang",
    "link_cycle",
    "cross_origin",
    "huge",
    "endless",
    "trickle",
    "deep_json",
    "rewrite",
)
# Kinds whose whole body the fault makes; `rewrite` edits the route's own.
BODY_KINDS: Final = frozenset({"huge", "endless", "trickle", "deep_json"})
HANG_MS: Final = 3_600_000.0
TRICKLE_MS: Final = 100.0

_lock = threading.Lock()


@dataclass
class Fault:
    kind: str
    route: str
    customer: str | None = None
    min_seats: int | None = None
    times: int | None = None
    retry_after: float = 1.0
    delay_ms: float = 2000.0
    # cross_origin: where the bad `next` link points.
    origin: str = "http://127.0.0.1:9"
    # huge, trickle: the body's length; deep_json: how deep its arrays nest.
    size: int = 128 * 1024 * 1024
    depth: int = 100_000
    # rewrite: the route's decoded answer in, the one to send out.
    edit: Callable[[Any], Any] | None = None
    # Bytes of a streamed body handed to the server so far.
    sent: int = 0

    def matches(self, route: str, customer: str | None, seats: int | None) -> bool:
        if self.route not in ("*", route):
            return False
        if self.customer is not None and self.customer != customer:
            return False
        if self.min_seats is not None and (seats is None or seats <= self.min_seats):
            return False
        return self.times is None or self.times > 0

    def consume(self) -> None:
        if self.times is not None:
            self.times -= 1


def first_match(
    faults: list[Fault], route: str, customer: str | None, seats: int | None
) -> Fault | None:
    """The first fault that applies, consuming one of its ``times``."""
    with _lock:
        for fault in faults:
            if fault.matches(route, customer, seats):
                fault.consume()
                return fault
    return None


def _each(node: Any, leaf: Callable[[Any], Any]) -> Any:
    """The document with ``leaf`` applied to every string and number in it (not to keys)."""
    if isinstance(node, dict):
        return {k: _each(v, leaf) for k, v in node.items()}
    if isinstance(node, list):
        return [_each(v, leaf) for v in node]
    return leaf(node)


def _duplicate(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _duplicate(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_duplicate(v) for v in node for _ in range(2)]
    return node


def _number(change: Callable[[float], float]) -> Callable[[Any], Any]:
    def leaf(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return change(value)
        return value

    return leaf


EDITS: Final[dict[str, Callable[[Any], Any]]] = {
    "duplicate": _duplicate,
    "surrogate": lambda body: _each(body, lambda v: v + "\ud800" if isinstance(v, str) else v),
    "nan": lambda body: _each(body, _number(lambda _: math.nan)),
    "negative": lambda body: _each(body, _number(lambda v: -v - 1)),
    "wrong_shape": lambda _: {"unexpected": "shape"},
}


def _count(spec: str, key: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"fault {spec!r}: {key}={value!r} must be a whole number >= 0")
    return int(value)


def _amount(spec: str, key: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    # NaN and infinity would only fail later, inside a request.
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"fault {spec!r}: {key}={value!r} must be a number >= 0")
    return number


def parse_fault(spec: str) -> Fault:
    head, _, query = spec.strip().partition("?")
    kind, at, route = head.partition("@")
    if not at:
        raise ValueError(f"fault {spec!r}: expected KIND@ROUTE, e.g. 504@seats")
    if kind not in KINDS:
        raise ValueError(f"fault {spec!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if not route:
        raise ValueError(f"fault {spec!r}: expected KIND@ROUTE, e.g. 504@seats")
    delay = {"hang": HANG_MS, "trickle": TRICKLE_MS}.get(kind, 2000.0)
    fault = Fault(kind, route, delay_ms=delay)
    seen: set[str] = set()
    for pair in query.split("&") if query else ():
        key, eq, value = pair.partition("=")
        if not eq or not value:
            raise ValueError(f"fault {spec!r}: {pair!r} is not key=value")
        if key in seen:
            raise ValueError(f"fault {spec!r}: {key!r} given twice")
        seen.add(key)
        value = unquote_plus(value)
        if key == "customer":
            fault.customer = value
        elif key == "min_seats":
            fault.min_seats = _count(spec, key, value)
        elif key == "times":
            fault.times = _count(spec, key, value)
        elif key == "retry_after":
            fault.retry_after = _amount(spec, key, value)
        elif key == "delay_ms":
            fault.delay_ms = _amount(spec, key, value)
        elif key == "origin":
            fault.origin = value
        elif key == "bytes":
            fault.size = _count(spec, key, value)
        elif key == "depth":
            fault.depth = _count(spec, key, value)
        elif key == "edit":
            if value not in EDITS:
                raise ValueError(f"fault {spec!r}: edit={value!r} (one of {', '.join(EDITS)})")
            fault.edit = EDITS[value]
        else:
            raise ValueError(
                f"fault {spec!r}: unknown key {key!r} (one of customer, min_seats, times, "
                "retry_after, delay_ms, origin, bytes, depth, edit)"
            )
    if kind == "rewrite" and fault.edit is None:
        raise ValueError(f"fault {spec!r}: rewrite needs edit= (one of {', '.join(EDITS)})")
    return fault

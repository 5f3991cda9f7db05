"""Faults the simulator can inject: ``KIND@ROUTE[?key=value&...]``.

ROUTE is a route key that a vendor's simulator part declares (``seats``, ``token`` ...) or ``*``;
the simulator refuses a fault whose route none of its vendors serves.
``customer`` matches the route's first path parameter (a customer, instance or job id).
``link_cycle`` and ``cross_origin`` corrupt the ``next`` link of Link-paginated lists.

``504@seats?min_seats=40``, ``429@domains?retry_after=2&times=1``, ``hang@*``,
``slow@applications?delay_ms=500``, ``malformed@seats?customer=1003``, ``401@*``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final
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
)
HANG_MS: Final = 3_600_000.0

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
    fault = Fault(kind, route, delay_ms=HANG_MS if kind == "hang" else 2000.0)
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
        else:
            raise ValueError(
                f"fault {spec!r}: unknown key {key!r} "
                "(one of customer, min_seats, times, retry_after, delay_ms, origin)"
            )
    return fault

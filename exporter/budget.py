"""Pacing a source's calls against the vendor's budget.

One ``Pacer`` per source decides when each call may start: ``await acquire(endpoint)`` before
the call, ``observe(ticket, report, status)`` once it was made, with what the response said
about the budget, and ``release(ticket)`` when it was not made after all.

Where the vendor reports its budget in response headers (remaining, reset time, cost of the
call), the vendor's figures rule: a call starts only if it leaves the reserve untouched, and a
token bucket spreads the calls over what is left of the window. Where the vendor reports
nothing, a configured calls-per-hour limit paces the same way, with a sliding one-hour log of
our own calls as a hard cap. With neither, there is no pacing at all. Until the first answer
shows which case applies, and whenever a window has passed, calls go one at a time (probes).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from exporter.settings import BudgetConfig

logger = logging.getLogger(__name__)

HEADER_REMAINING: Final = "X-API-Limit-Remaining"
HEADER_RESETS: Final = "X-API-Limit-Resets"
HEADER_COST: Final = "X-API-Limit-Cost"

HOUR: Final = 3600.0
# Responses of one window may disagree on its reset time by rounding (a reset given in delta
# seconds): reset times closer than this are the same window.
SAME_WINDOW_SECONDS: Final = 1.0
# The end of a window is not paced: budget left then would expire unused anyway, and calls
# paced to the very end would reach the vendor after the reset.
END_SHARE: Final = 0.05
# A waiting caller looks at the clocks at least this often (a wall-clock jump, a passed window).
MAX_NAP_SECONDS: Final = 30.0
MIN_NAP_SECONDS: Final = 0.001
# How far the vendor's clock may lag ours before we stop believing its reset time.
MAX_GRACE_SECONDS: Final = 60.0

Mode = Literal["unknown", "headers", "hourly", "free"]


@dataclass(frozen=True, slots=True)
class BudgetView:
    """A source's budget as a scrape shows it. None where it is not known."""

    # Calls that may still be made in this window before the reserve is reached.
    remaining: float | None
    # Calls per hour the budget allows, after the reserve.
    allowed_per_hour: float | None
    # Calls per hour the configured TTLs need for the customers known now.
    planned_per_hour: float | None
    # Time to read every customer once at the allowed rate.
    cover_seconds: float | None


def parse_reset_time(value: str | None, now: float) -> float | None:
    """The vendors do not document the reset header; accept epoch s/ms, delta seconds or a
    date."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    if not math.isfinite(number) or number < 0:
        return None
    if number > 1e12:
        return number / 1000.0
    if number > 1e9:
        return number
    return now + number


@dataclass(frozen=True, slots=True)
class Report:
    """What one response said about the budget; None where a header was absent or unreadable."""

    remaining: float | None = None
    resets: float | None = None
    cost: float | None = None


def _number(headers: Mapping[str, str], name: str) -> float | None:
    text = headers.get(name)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        logger.debug("msg=%s header=%s", "unreadable budget header", name)
        return None
    return number


def read_report(headers: Mapping[str, str], now: float) -> Report:
    return Report(
        _number(headers, HEADER_REMAINING),
        parse_reset_time(headers.get(HEADER_RESETS), now),
        _number(headers, HEADER_COST),
    )


@dataclass(eq=False, slots=True)
class Ticket:
    """One admitted call, until it is observed or released."""

    endpoint: str
    cost: float = 0.0
    probe: bool = False
    # Its entry in the one-hour log (monotonic time), in calls-per-hour mode.
    logged: float | None = None
    open: bool = True


class Pacer:
    def __init__(
        self,
        config: BudgetConfig,
        *,
        name: str = "",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._config = config
        self._clock = clock
        self._mono = monotonic
        self._mode: Mode = "hourly" if config.calls_per_hour is not None else "unknown"
        # The vendor's window, as its headers describe it (wall-clock times).
        self._remaining: float | None = None
        self._resets: float | None = None
        self._limit: float | None = None
        # A window's length, from two reset times in a row; and the longest time to a reset
        # seen, overall and in the current window (a window is at least that long).
        self._period: float | None = None
        self._span = 0.0
        self._window_span = 0.0
        self._grace = 0.0
        self._costs: dict[str, float] = {}
        # Admitted, not yet observed or released.
        self._inflight = 0.0
        self._probing = False
        self._log: deque[float] = deque()
        self._rate = 0.0
        self._filled = monotonic()
        self._tokens = self._capacity()
        self._queue = asyncio.Lock()
        self._changed = asyncio.Event()

    @property
    def mode(self) -> Mode:
        return self._mode

    def cost(self, endpoint: str) -> float:
        """The highest cost the vendor reported for the endpoint; 1 until it reports one."""
        return self._costs.get(endpoint, 1.0)

    async def acquire(self, endpoint: str) -> Ticket:
        """Wait until a call to the endpoint may start; first come, first served."""
        if self._mode == "free":
            return Ticket(endpoint)
        if not self._queue.locked():
            got = self.poll(endpoint)
            if isinstance(got, Ticket):
                return got
        async with self._queue:
            while not isinstance(got := self.poll(endpoint), Ticket):
                await self._nap(got)
            return got

    def bypass(self, endpoint: str) -> Ticket:
        """Admit a call at once: one made inside another admitted call (a token fetch), which
        would otherwise wait for its own caller."""
        if self._mode == "hourly":
            return self._admit(endpoint, 1.0, logged=self._mono())
        return self._admit(endpoint, 0.0 if self._mode == "free" else self.cost(endpoint))

    def poll(self, endpoint: str) -> Ticket | float:
        """Admit a call now (a ticket), or the seconds to wait before asking again (wakes early
        when a call is observed or released)."""
        if self._mode == "free":
            return Ticket(endpoint)
        if self._mode == "hourly":
            return self._poll_hourly(endpoint)
        cost = self.cost(endpoint)
        now = self._clock()
        if not self._known(now):
            if self._probing:
                return MAX_NAP_SECONDS
            self._probing = True
            return self._admit(endpoint, cost, probe=True)
        assert self._resets is not None
        self._refill(self._mono())
        self._set_rate(now)
        until_reset = max(self._resets + self._grace - now, MIN_NAP_SECONDS)
        if self._usable() < cost:
            return until_reset
        if self._tokens >= cost:
            self._tokens -= cost
            return self._admit(endpoint, cost)
        if self._rate <= 0:
            return until_reset
        return max(min((cost - self._tokens) / self._rate, until_reset), MIN_NAP_SECONDS)

    def observe(self, ticket: Ticket, report: Report, status: int | None = None) -> None:
        """A call was made: settle its ticket and learn from what the response said.
        ``status`` None: no response (the call may still have reached the vendor)."""
        self._settle(ticket)
        if report.cost is not None:
            self._costs[ticket.endpoint] = max(self._costs.get(ticket.endpoint, 0.0), report.cost)
        if report.remaining is not None:
            self._learn(ticket.endpoint, report, ticket.probe)
        elif self._mode == "unknown" and status is not None and status < 400:
            logger.info("msg=%s source=%s", "the vendor reports no budget: not pacing", self.name)
            self._mode = "free"
        if status == 429 and self._mode in ("headers", "hourly"):
            self._tokens = 0.0
        self._wake()

    def release(self, ticket: Ticket) -> None:
        """The call was not made: give back what it took."""
        if not ticket.open:
            return
        self._settle(ticket)
        if ticket.logged is not None:
            with contextlib.suppress(ValueError):
                self._log.remove(ticket.logged)
        self._refill(self._mono())
        self._tokens = min(self._tokens + ticket.cost, self._capacity())
        self._wake()

    def view(self) -> BudgetView:
        """Remaining budget (in the vendor's units) and the allowed calls per hour; the plan's
        fields are the crawl's to fill in."""
        remaining = allowed = None
        if self._mode == "headers":
            if self._known(self._clock()):
                remaining = max(self._usable(), 0.0)
            if self._limit is not None:
                window = self._period or max(self._span, HOUR)
                allowed = self._usable_budget() * HOUR / window
        elif self._mode == "hourly":
            self._prune(self._mono())
            allowed = self._hour_cap()
            remaining = max(allowed - len(self._log), 0.0)
        return BudgetView(remaining, allowed, None, None)

    def dump(self) -> dict[str, float | None]:
        """The state worth keeping across a restart, in wall-clock times."""
        now, mono = self._clock(), self._mono()
        remaining = self._remaining
        if remaining is not None:
            # Calls in flight now will have been charged by the time this is read again.
            remaining = max(remaining - self._inflight, 0.0)
        state: dict[str, float | None] = {
            "headers_seen": 1.0 if self._mode == "headers" else 0.0,
            "remaining": remaining,
            "resets": self._resets,
            "limit": self._limit,
            "period": self._period,
            "span": self._span,
            "grace": self._grace,
        }
        self._prune(mono)
        if self._log:
            state["hour_calls"] = float(len(self._log))
            state["hour_first"] = now - (mono - self._log[0])
            state["hour_last"] = now - (mono - self._log[-1])
        for endpoint, cost in self._costs.items():
            state[f"cost.{endpoint}"] = cost
        return state

    def restore(self, state: Mapping[str, object]) -> None:
        """Take back what ``dump`` saved, before the first call. A value of the wrong type or
        out of range is ignored: a damaged state costs a probe, never a failure."""

        def get(key: str, low: float = 0.0) -> float | None:
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value) if math.isfinite(value) and value >= low else None

        for key in state:
            if key.startswith("cost.") and (cost := get(key)) is not None:
                self._costs[key.removeprefix("cost.")] = cost
        now, mono = self._clock(), self._mono()
        self._limit = get("limit")
        self._period = get("period", MIN_NAP_SECONDS)
        self._span = get("span") or 0.0
        self._grace = min(get("grace") or 0.0, MAX_GRACE_SECONDS)
        remaining, resets = get("remaining"), get("resets")
        if get("headers_seen") == 1.0:
            self._mode = "headers"
            if remaining is not None and resets is not None:
                self._remaining, self._resets = remaining, resets
                self._window_span = self._period or max(resets - now, 0.0)
        calls, first, last = get("hour_calls"), get("hour_first"), get("hour_last")
        # No more entries than the limit allows: a damaged count must not fill the memory.
        count = min(int(calls or 0), self._config.calls_per_hour or 0)
        if count and first is not None and last is not None and first <= last:
            step = (last - first) / (count - 1) if count > 1 else 0.0
            entries = (mono - (now - (first + i * step)) for i in range(count))
            self._log = deque(sorted(t for t in entries if t > mono - HOUR))
        # No burst after a restart: a crash loop must not spend the budget in bursts.
        self._tokens, self._filled = 0.0, mono
        self._wake()

    # The header mode's arithmetic.

    def _known(self, now: float) -> bool:
        return (
            self._remaining is not None
            and self._resets is not None
            and now < self._resets + self._grace
        )

    def _reserve(self) -> float:
        return self._config.reserve_ratio * (self._limit or 0.0)

    def _usable(self) -> float:
        return (self._remaining or 0.0) - self._inflight - self._reserve()

    def _usable_budget(self) -> float:
        return (self._limit or 0.0) * (1.0 - self._config.reserve_ratio)

    def _set_rate(self, now: float) -> None:
        """Spread what is usable over the time to the reset, less the window's unpaced end."""
        if not self._known(now):
            self._rate = 0.0
            return
        assert self._resets is not None
        usable = self._usable()
        horizon = self._resets + self._grace - now - END_SHARE * self._window_span
        if usable <= 0:
            self._rate = 0.0
        elif horizon <= 0:
            self._rate = math.inf
            self._tokens = self._capacity()
        else:
            self._rate = usable / horizon
        self._tokens = min(self._tokens, self._capacity())

    def _learn(self, endpoint: str, report: Report, probe: bool) -> None:
        assert report.remaining is not None
        now, mono = self._clock(), self._mono()
        self._refill(mono)
        if self._mode != "headers":
            logger.info(
                "msg=%s source=%s", "the vendor reports its budget: pacing by it", self.name
            )
            self._mode = "headers"
        resets = report.resets
        if resets is None:
            # Without a reset time, the window is taken to be the hourly one the vendors use.
            resets = self._resets if self._known(now) else now + HOUR
        assert resets is not None
        cost = report.cost if report.cost is not None else self.cost(endpoint)
        new_window = self._resets is None or resets > self._resets + SAME_WINDOW_SECONDS
        if new_window:
            if self._resets is not None:
                step = resets - self._resets
                self._period = step if self._period is None else min(self._period, step)
            self._resets, self._remaining = resets, report.remaining
            self._window_span, self._grace = 0.0, 0.0
        else:
            assert self._resets is not None
            if resets < self._resets - SAME_WINDOW_SECONDS:
                return  # an answer from a window that has passed
            self._remaining = min(self._remaining or 0.0, report.remaining)
            if probe and now >= self._resets + self._grace:
                # The probe went out after the reset by our clock, and the vendor still counts
                # the old window: its clock lags ours.
                self._grace = min(now - self._resets + SAME_WINDOW_SECONDS, MAX_GRACE_SECONDS)
        self._limit = max(self._limit or 0.0, report.remaining + cost)
        until_reset = self._resets - now
        self._span = max(self._span, until_reset)
        self._window_span = max(self._window_span, until_reset)
        if new_window:
            self._tokens, self._filled = self._capacity(), mono
        self._set_rate(now)

    # Calls-per-hour mode.

    def _hour_cap(self) -> float:
        per_hour = self._config.calls_per_hour or 0
        return max(per_hour * (1.0 - self._config.reserve_ratio), 1.0)

    def _prune(self, mono: float) -> None:
        while self._log and self._log[0] <= mono - HOUR:
            self._log.popleft()

    def _poll_hourly(self, endpoint: str) -> Ticket | float:
        mono = self._mono()
        self._prune(mono)
        cap = self._hour_cap()
        if len(self._log) + 1 > cap:
            return max(self._log[0] + HOUR - mono, MIN_NAP_SECONDS)
        self._refill(mono)
        self._rate = cap / HOUR
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return self._admit(endpoint, 1.0, logged=mono)
        return max((1.0 - self._tokens) / self._rate, MIN_NAP_SECONDS)

    # Shared.

    def _capacity(self) -> float:
        floor = max([1.0, *self._costs.values()])
        if self._mode == "headers" and self._limit is not None:
            return max(self._config.burst_ratio * self._usable_budget(), floor)
        if self._mode == "hourly":
            return max(self._config.burst_ratio * self._hour_cap(), floor)
        return floor

    def _refill(self, mono: float) -> None:
        elapsed = max(mono - self._filled, 0.0)
        self._filled = mono
        capacity = self._capacity()
        if math.isinf(self._rate):
            self._tokens = capacity
        else:
            self._tokens = min(self._tokens + self._rate * elapsed, capacity)

    def _admit(
        self, endpoint: str, cost: float, *, probe: bool = False, logged: float | None = None
    ) -> Ticket:
        self._inflight += cost
        if logged is not None:
            self._log.append(logged)
        return Ticket(endpoint, cost, probe, logged)

    def _settle(self, ticket: Ticket) -> None:
        if not ticket.open:
            return
        ticket.open = False
        self._inflight = max(self._inflight - ticket.cost, 0.0)
        if ticket.probe:
            self._probing = False

    def _wake(self) -> None:
        # Only the caller at the head of the queue naps on the event, holding the queue.
        if self._queue.locked():
            self._changed.set()
            self._changed = asyncio.Event()

    async def _nap(self, seconds: float) -> None:
        changed = self._changed
        try:
            async with asyncio.timeout(min(max(seconds, MIN_NAP_SECONDS), MAX_NAP_SECONDS)):
                await changed.wait()
        except TimeoutError:
            pass

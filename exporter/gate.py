"""Pauses a vendor imposes: ``Retry-After`` read, and the gate that holds a source's callers
until a pause has passed."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


class RateGate:
    """Holds every caller of one source until a vendor-imposed pause has passed; a pause lasts
    at most ``max_seconds``."""

    def __init__(self, max_seconds: float = math.inf) -> None:
        self._not_before = 0.0
        self._max = max_seconds

    def block_for(self, seconds: float) -> None:
        seconds = min(seconds, self._max)
        self._not_before = max(self._not_before, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds until the pause is over; 0 when there is none."""
        return max(self._not_before - time.monotonic(), 0.0)

    async def wait(self) -> None:
        # A loop, not an Event: another 429 may push the pause further out while we sleep.
        while (delay := self._not_before - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

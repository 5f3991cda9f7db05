"""Bearer tokens the fake vendors hand out: they expire, and a refresh token works once."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable


class TokenStore:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._access: dict[str, float] = {}
        self._refresh: set[str] = set()
        self._issued_refresh: list[str] = []
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, str]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self._lock:
            self._access[access] = self._clock() + self.ttl
            self._refresh.add(refresh)
            self._issued_refresh.append(refresh)
        return access, refresh

    def valid(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            return self._clock() < self._access.get(token, 0.0)

    def redeem(self, refresh: str) -> bool:
        with self._lock:
            if refresh not in self._refresh:
                return False
            self._refresh.discard(refresh)
            return True

    def issued_values(self) -> list[str]:
        """Every token handed out so far (tests look for them where they must not be)."""
        with self._lock:
            return [*self._access, *self._issued_refresh]

    def revoke_all(self) -> None:
        with self._lock:
            self._access.clear()

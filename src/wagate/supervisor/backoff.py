"""Reconnect pacing: exponential backoff with full jitter, and a per-session circuit breaker."""

from __future__ import annotations

import random
from enum import StrEnum

from wagate.clock import Clock

__all__ = ["Backoff", "BreakerState", "CircuitBreaker"]


class Backoff:
    """Delay before attempt ``n`` (1-based): uniform in [0, min(cap, base * 2**(n-1))] ("full jitter")."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng

    def bound(self, attempt: int) -> float:
        exponent = min(max(attempt - 1, 0), 62)
        return min(self.cap, self.base * float(2**exponent))

    def delay(self, attempt: int) -> float:
        return self._rng.uniform(0, self.bound(attempt))


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``reset_after`` seconds lets one attempt through
    (half-open): a success closes it, a failure opens it again."""

    def __init__(self, threshold: int, reset_after: float, clock: Clock) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self.failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() >= self._opened_at + self.reset_after:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def remaining(self) -> float:
        """Seconds until an attempt is allowed (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after - self._clock())

    def record_failure(self) -> bool:
        """Count a failure; True when this failure (re)opens the breaker."""
        self.failures += 1
        was = self.state
        if was is BreakerState.HALF_OPEN or (was is BreakerState.CLOSED and self.failures >= self.threshold):
            self._opened_at = self._clock()
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self._opened_at = None

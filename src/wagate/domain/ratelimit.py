"""A token bucket: ``rate`` tokens a second, at most ``burst`` saved up. Pure; the caller passes the time."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: int
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now  # a clock that stepped back refills nothing, and freezes nothing either

    def available(self, now: float) -> int:
        """Whole tokens that can be taken now."""
        self._refill(now)
        return int(self.tokens)

    def take(self, now: float, count: int = 1) -> None:
        self._refill(now)
        self.tokens -= count

    def wait(self, now: float, count: int = 1) -> float:
        """Seconds until ``count`` tokens are there (0 when they are)."""
        self._refill(now)
        missing = count - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

"""Backoff bounds and jitter, and the breaker's states, on an injected clock."""

from __future__ import annotations

import random

from wagate.supervisor.backoff import Backoff, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_jitter_within_growing_bounds() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(1))
    assert [backoff.bound(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    for attempt in range(1, 12):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= backoff.bound(attempt) for d in delays)
        assert max(delays) > 0.8 * backoff.bound(attempt)  # the whole range is used...
        assert min(delays) < 0.2 * backoff.bound(attempt)  # ...from near zero: full jitter
    assert backoff.bound(10_000) == 60.0


def state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call, so that the type checker does not narrow a property across assertions


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=5, reset_after=60, clock=clock)
    assert [breaker.record_failure() for _ in range(4)] == [False] * 4
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert breaker.remaining() == 60
    clock.now += 59.5
    assert state(breaker) is BreakerState.OPEN
    clock.now += 0.5
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.remaining() == 0
    assert breaker.record_failure()  # the trial failed: open again for a full period
    assert state(breaker) is BreakerState.OPEN
    assert breaker.remaining() == 60
    clock.now += 60
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.failures == 0

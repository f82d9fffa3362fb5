"""This worker's side of spreading the sessions over the live workers (the rules are ``wagate.supervisor.balance``):
what it sees at each reconcile, how many free sessions it claims, which of its own it hands over, and how soon it
looks again while sessions are being handed over to it."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping

from wagate.clock import Clock
from wagate.config import Settings
from wagate.domain.sessions import Status
from wagate.ids import SessionId
from wagate.supervisor.balance import Spread
from wagate.supervisor.commands import Command
from wagate.supervisor.runner import SessionRunner
from wagate.supervisor.stats import SessionStats

__all__ = ["REBALANCE_COOLDOWN", "REBALANCE_PAUSE", "Balancer"]

log = logging.getLogger("wagate.supervisor")

REBALANCE_PAUSE = 2.0  # seconds between reconciles of a worker that is waiting for sessions handed over to it
REBALANCE_COOLDOWN = 10.0  # seconds at least that a worker which handed sessions over claims no free ones


class Balancer:
    """One worker's share of the sessions, as of its last reconcile."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        stats: SessionStats,
        owner: str,
        runners: Mapping[SessionId, SessionRunner],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._stats = stats
        self._owner = owner
        self._runners = runners
        self.workers: dict[str, int] = {}  # live workers and the leases each holds, as of the last reconcile
        self.total = 0  # sessions to run, as of the last reconcile
        self._waiting_since: float | None = None  # since when others are about to hand sessions over to this one
        self._handed_over_at: float | None = None

    def spread(self) -> Spread:
        """What this worker sees: the others as of the last reconcile, itself as it is (sessions being handed over
        are no longer its own, so that a round does not hand them over twice)."""
        staying = sum(1 for runner in self._runners.values() if not runner.handing_over)
        return Spread(self._owner, self.total, {**self.workers, self._owner: staying})

    def see(self, workers: dict[str, int]) -> None:
        """The live workers at this reconcile. One gone since the last (it died, or stopped) ends the pause in
        claiming after a hand-over: its sessions run nowhere and are taken over now, each worker up to its share."""
        if self._handed_over_at is not None and self.workers.keys() - workers.keys():
            self._handed_over_at = None
        self.workers = workers

    def claimed(self) -> None:
        """A session was claimed: sessions are still coming."""
        self._waiting_since = None

    def hand_over_excess(self) -> None:
        """Hand over this worker's part of what workers below the floor lack: WORKING sessions only, which
        reconnect on the worker that claims them without a new scan (one being linked keeps its QR code here)."""
        spread = self.spread()
        count = spread.to_hand_over(self._settings.rebalance_step)
        movable = [r for r in self._runners.values() if r.observed()[0] is Status.WORKING and not r.handing_over]
        chosen = self._rng.sample(movable, min(count, len(movable)))
        for runner in chosen:
            runner.handing_over = True
            runner.command(Command.HAND_OVER)
        if chosen:
            self._stats.handovers += len(chosen)
            self._handed_over_at = self._clock()
            log.info(
                "handing %d session(s) over: %d run here, %d workers share %d",
                len(chosen),
                spread.mine,
                len(spread.counts),
                spread.total,
            )

    def claim_room(self) -> int:
        """Free sessions to claim this round: up to the share, none for a while after handing some over."""
        if self._handed_over_at is not None and self._clock() - self._handed_over_at < self._cooldown:
            return 0
        return self.spread().room()

    def reconcile_pause(self) -> float:
        """Until the next reconcile: the interval, or less while other workers are about to hand sessions over to
        this one, so that it claims them within seconds (for as long as a worker claims nothing after handing
        over: an excess of sessions that are not WORKING is never handed over)."""
        interval = self._settings.reconcile_interval
        now = self._clock()
        if self._settings.rebalance_step <= 0 or not self.spread().waiting():
            self._waiting_since = None
            return interval
        if self._waiting_since is None:
            self._waiting_since = now
        return min(interval, REBALANCE_PAUSE) if now - self._waiting_since < self._cooldown else interval

    @property
    def _cooldown(self) -> float:
        """How long a worker that handed sessions over leaves them to the others."""
        return max(2 * self._settings.reconcile_interval, REBALANCE_COOLDOWN)

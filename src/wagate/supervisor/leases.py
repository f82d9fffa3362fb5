"""This worker's leases: renewed all at once, the other workers' watched for a lapse, and one held for a moment.

Leases are renewed in one statement for all of this worker's sessions (and the worker's own life with them); a
runner whose lease is gone is told so and stops without writing. When another worker's lease lapses (that worker
died, or hangs), a reconcile runs at once, so its sessions are taken over at the lease's expiry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from wagate.clock import Clock
from wagate.config import Settings
from wagate.domain.sessions import Lease, Session
from wagate.engines.base import EngineUnavailable
from wagate.ids import SessionId
from wagate.store.contracts.leases import LeaseStore
from wagate.supervisor.commands import Command
from wagate.supervisor.runner import SessionRunner

__all__ = ["LAPSE_MARGIN", "HeldLeases"]

log = logging.getLogger("wagate.supervisor")

LAPSE_MARGIN = 0.1  # seconds after another worker's lease expires before this one looks (timers are not exact)


class HeldLeases:
    """The leases of one supervisor (``owner``)."""

    def __init__(self, store: LeaseStore, settings: Settings, clock: Clock, owner: str, takeover: str) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self.owner = owner
        self.takeover = takeover  # the owners whose leases this one takes over at once: earlier runs of its worker
        self.reconciled_at = 0.0  # when the last reconcile began, by the clock: lapses before it are dealt with
        self._next_lapse: float | None = None  # the earliest expiry of another worker's lease, as last seen

    async def renew(self, runners: Mapping[SessionId, SessionRunner]) -> None:
        """Renew every lease this worker holds; a runner whose lease is gone is told so."""
        held = await self._store.renew_all(self.owner, self._settings.lease_ttl)
        for session_id, runner in list(runners.items()):
            if session_id not in held:
                runner.command(Command.LEASE_LOST)

    async def watch_lapses(self, reconcile: Callable[[], Awaitable[None]]) -> None:
        """Reconcile as soon as another worker's lease lapses (that worker stopped renewing: it died, or hangs):
        its sessions are taken over at the lease's expiry, not at the next reconcile."""
        while True:
            lapse = await self._store.next_lapse(besides=self.owner, after=self.reconciled_at)
            if lapse is None or lapse > self._clock():
                break
            log.info("a lease of another worker lapsed %.1fs ago; reconciling", self._clock() - lapse)
            await reconcile()  # it begins after the lapse: the next look is for later ones
        self._next_lapse = lapse

    def lapse_pause(self) -> float:
        """Until the next look at the other workers' leases: just past the earliest expiry seen, and at least
        every third of a lease (renewals move the expiries on; new leases come)."""
        longest = self._settings.lease_ttl / 3
        if self._next_lapse is None:
            return longest
        return min(longest, max(LAPSE_MARGIN, self._next_lapse - self._clock() + LAPSE_MARGIN))

    @contextlib.asynccontextmanager
    async def held(self, session: Session) -> AsyncIterator[Lease]:
        """The session's lease for a moment, for work on a session that runs nowhere; refused when another holds it."""
        lease = await self._store.acquire(session.id, self.owner, self._settings.lease_ttl, takeover=self.takeover)
        if lease is None:
            raise EngineUnavailable("another worker holds this session's lease")
        try:
            yield lease
        finally:
            await self._store.release(session.id, self.owner, lease.epoch)

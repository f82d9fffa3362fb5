"""Session leases: one owner at a time, fenced by an epoch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from wagate.domain.sessions import (
    Desired,
    Lease,
)
from wagate.ids import SessionId

__all__ = ["LeaseStore"]


class LeaseStore(ABC):
    """One lease row per session (made with the session): (owner, epoch, expiry)."""

    async def acquire(
        self, session_id: SessionId, owner: str, ttl: float, *, takeover: str | None = None
    ) -> Lease | None:
        """Take the lease if it is free, expired or already ours; a new owner gets a higher epoch. None if held."""
        return (await self.acquire_many([session_id], owner, ttl, takeover=takeover)).get(session_id)

    @abstractmethod
    async def acquire_many(
        self,
        session_ids: Sequence[SessionId],
        owner: str,
        ttl: float,
        *,
        takeover: str | None = None,
        limit: int | None = None,
        wanted: Desired | None = None,
    ) -> dict[SessionId, Lease]:
        """Take every lease that is free, expired or ours, in one transaction; the answer holds those taken.

        A live lease whose owner starts with ``takeover`` (an earlier run of this same worker, now gone) is taken
        as ours. Our own live lease keeps its epoch; any other taken lease gets a higher one, which fences every
        write still in flight under the old one. ``limit`` caps how many free or expired leases are taken (in the
        order of ``session_ids``); ours and those of our earlier run are taken whatever it says.

        ``wanted``: only sessions whose committed row, read in this transaction after their leases are locked,
        still asks for it and does not have it (to run and not FAILED; to stop and not yet STOPPED or FAILED). A
        session listed a moment before may have failed since, its runner gone: a listing is no reason to run it.
        """

    @abstractmethod
    async def renew(self, session_id: SessionId, owner: str, epoch: int, ttl: float) -> bool: ...

    @abstractmethod
    async def renew_all(self, owner: str, ttl: float) -> set[SessionId]:
        """Extend every lease ``owner`` holds, and the worker's own life with them (one transaction: see
        ``WorkerStore.beat``); the answer is the set still held."""

    @abstractmethod
    async def next_lapse(self, *, besides: str, after: float) -> float | None:
        """The earliest expiry later than ``after`` of a lease held by another owner than ``besides``, or None: when
        the sessions of a worker that stopped renewing become free to take over."""

    @abstractmethod
    async def held(self, session_ids: Sequence[SessionId]) -> dict[SessionId, Lease]:
        """The leases of these sessions (free or lapsed ones too)."""

    @abstractmethod
    async def release(self, session_id: SessionId, owner: str, epoch: int) -> None: ...

    @abstractmethod
    async def release_all(self, owner: str) -> int: ...

    @abstractmethod
    async def get(self, session_id: SessionId) -> Lease | None: ...

"""The live workers: which processes drive sessions, how many each holds, and where each is reached."""

from __future__ import annotations

from abc import ABC, abstractmethod

from wagate.ids import SessionId

__all__ = ["WorkerStore"]


class WorkerStore(ABC):
    """One row per worker, kept alive by its beats and, from then on, by the renewal of its leases."""

    @abstractmethod
    async def beat(self, owner: str, ttl: float, url: str | None = None) -> dict[str, int]:
        """List the worker ``owner`` (reached at ``url``, if it says), alive for ``ttl`` seconds when it is new;
        from then on ``LeaseStore.renew_all`` keeps it alive exactly as long as its leases, so that a worker that
        dies leaves the live ones when its leases lapse, not later. The answer maps every live worker (this one
        included) to the number of live session leases it holds."""

    @abstractmethod
    async def runs_on(self, session_id: SessionId) -> tuple[str, str | None] | None:
        """The live worker holding the session's lease and the address it gave, or None when none holds it."""

    @abstractmethod
    async def leave(self, owner: str) -> None:
        """The worker ``owner`` stops: it no longer counts among the live ones."""

    @abstractmethod
    async def recent_workers(self, within: float, *, besides: str) -> int:
        """How many workers other than those whose owner starts with ``besides`` were alive in the last ``within``
        seconds (up to an hour), stopped ones included: whether this is an installation of several workers."""

"""The peer channel: what the processes on one database tell each other (PostgreSQL notifications)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from wagate.domain.events import AnnounceListener
from wagate.ids import WebhookId

__all__ = ["PeerChannel"]


class PeerChannel(ABC):
    """Announcements between the processes of one installation: events they committed (by sequence number, read
    from the history), a hello when one begins to listen, webhook endpoints changed, API keys revoked and tenants
    deleted. Where the database cannot carry them (SQLite, one process), nothing is sent or heard."""

    @abstractmethod
    def announce(self, process: str | None) -> None:
        """Events committed from now on are announced to the other processes on the database as ``process``'s, in
        their transactions (None: not announced). Where the database cannot (SQLite, one process), nothing."""

    @abstractmethod
    def listen(self, heard: AnnounceListener) -> AbstractAsyncContextManager[Callable[[], bool] | None]:
        """While the block runs, ``heard`` gets what other processes announce; the block's value tells whether
        the listening connection still stands, or is None where the database cannot announce (SQLite)."""

    @abstractmethod
    async def tell_peers(self, process: str, changed_webhooks: Sequence[WebhookId] = ()) -> None:
        """Tell the other processes that ``process`` listens now (an announcement of no events), or that it changed
        these webhook endpoints; nothing where the database cannot announce. (Revoked keys and deleted tenants are
        announced by the store itself, in the transaction that revokes or deletes.)"""

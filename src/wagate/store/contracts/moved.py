"""Old addresses of calls that moved to a contract of their own, kept while their callers move.

Workers and the peer channel were parts of the lease and event stores; each now has its own contract
(``store.workers``, ``store.peers``). The supervisor and the webhook dispatcher still make a few of those calls at the
old address: these forward them, and go once no caller is left.
"""

from __future__ import annotations

from collections.abc import Sequence

from wagate.ids import WebhookId
from wagate.store.contracts.events import EventStore
from wagate.store.contracts.leases import LeaseStore
from wagate.store.contracts.peers import PeerChannel
from wagate.store.contracts.workers import WorkerStore


class LeasesWithWorkers(LeaseStore):
    """``store.leases``, still answering the worker calls the supervisor makes there."""

    workers: WorkerStore

    async def beat(self, owner: str, ttl: float, url: str | None = None) -> dict[str, int]:
        return await self.workers.beat(owner, ttl, url)

    async def leave(self, owner: str) -> None:
        await self.workers.leave(owner)

    async def recent_workers(self, within: float, *, besides: str) -> int:
        return await self.workers.recent_workers(within, besides=besides)


class EventsWithPeers(EventStore):
    """``store.events``, still answering the peer channel's calls the supervisor and the dispatcher make there."""

    peers: PeerChannel

    def announce(self, process: str | None) -> None:
        self.peers.announce(process)

    async def tell_peers(self, process: str, changed_webhooks: Sequence[WebhookId] = ()) -> None:
        await self.peers.tell_peers(process, changed_webhooks)

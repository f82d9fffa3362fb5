"""The in-process event bus: committed events fan out to subscribers (WebSocket clients) of their tenant.

A subscriber has a bounded queue. One that falls too far behind is cut off (``overflowed``) instead of making the
publisher wait or buffering without bound: a slow client never slows anyone else, and it can resume from the
history (``GET /api/events?after=``). "Behind" is judged when a commit arrives, so one large commit (a batch of
messages) does not cut off a client that keeps up: a subscriber is cut off when ``max_pending`` events still wait
while its sender is ``blocked`` writing to the client (the client does not read fast enough), or when ten times
that many wait whatever the reason. Events that wait only because this process is busy are not the client's
fault: they go out as soon as the sender runs.

A subscriber whose API key is revoked, or whose tenant is deleted, is cut off too (``revoke``), at once: its sender
hears of it even while it waits for the client (``on_revoked``). Whoever else keeps what a key opens (the API's key
cache) hears every revocation through ``revocation_listeners``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable

from wagate.domain.events import Committed, Event, EventFilter
from wagate.ids import ApiKeyId, TenantId

__all__ = ["HARD_LIMIT_FACTOR", "REVOKED_MEMORY", "LocalBus", "Revoked", "SlowConsumer", "Subscription"]

HARD_LIMIT_FACTOR = 10
REVOKED_MEMORY = 60.0  # seconds a revocation is remembered for those who authenticated just before it


class SlowConsumer(Exception):
    """The subscriber fell more than its queue's size behind."""


class Revoked(Exception):
    """The subscriber's API key was revoked, or its tenant deleted."""


class Subscription:
    def __init__(
        self,
        bus: LocalBus,
        tenant_id: TenantId,
        wanted: EventFilter,
        max_pending: int,
        key_id: ApiKeyId | None = None,
    ) -> None:
        self._bus = bus
        self.tenant_id = tenant_id
        self.key_id = key_id
        self.wanted = wanted
        self.max_pending = max_pending
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.blocked = False  # set by the sender while a write waits for the client
        self.revoked: str | None = None  # why the subscriber's credentials were taken back
        self.on_revoked: Callable[[], None] | None = None  # the sender's hook, to stop even a blocked write

    def revoke(self, reason: str) -> None:
        if self.revoked is not None:
            return
        self.revoked = reason
        self._queue.clear()
        self._ready.set()
        if self.on_revoked is not None:
            self.on_revoked()

    def offer(self, events: list[Event]) -> None:
        """One commit's events of this subscriber's tenant."""
        if self.overflowed:
            return
        waiting = len(self._queue)
        if (self.blocked and waiting >= self.max_pending) or waiting >= HARD_LIMIT_FACTOR * self.max_pending:
            self.overflowed = True
            self._queue.clear()
            self._ready.set()
            return
        wanted = [event for event in events if self.wanted.matches(event)]
        if wanted:
            self._queue.extend(wanted)
            self._ready.set()

    def _check(self) -> None:
        if self.revoked is not None:
            raise Revoked(self.revoked)
        if self.overflowed:
            raise SlowConsumer(f"more than {self.max_pending} events were waiting")

    async def next(self) -> Event:
        """The next event; raises ``SlowConsumer`` once the subscriber has fallen too far behind, ``Revoked`` once
        its credentials are taken back."""
        while not self._queue:
            self._check()
            self._ready.clear()
            await self._ready.wait()
        self._check()
        return self._queue.popleft()

    def pop(self) -> Event | None:
        """The next event if one waits, without waiting; raises as ``next`` does."""
        self._check()
        return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        self._bus.unsubscribe(self)


class LocalBus:
    def __init__(self) -> None:
        self._subscribers: dict[TenantId, set[Subscription]] = {}
        self._revoked: dict[str, tuple[float, str]] = {}  # key or tenant id -> (when, why), for REVOKED_MEMORY
        # Called with the keys and tenants of every revocation, before any subscriber is cut off.
        self.revocation_listeners: list[Callable[[Collection[ApiKeyId], Collection[TenantId]], None]] = []

    def subscribe(
        self, tenant_id: TenantId, wanted: EventFilter, *, max_pending: int = 1000, key_id: ApiKeyId | None = None
    ) -> Subscription:
        """A subscriber of one tenant's events, through one of its keys (None: not revocable by key)."""
        subscription = Subscription(self, tenant_id, wanted, max_pending, key_id)
        self._subscribers.setdefault(tenant_id, set()).add(subscription)
        if (reason := self._revocation(subscription)) is not None:  # revoked since it was authenticated
            subscription.revoke(reason)
        return subscription

    def revoke(self, *, keys: Iterable[ApiKeyId] = (), tenants: Iterable[TenantId] = ()) -> int:
        """Cut off the subscribers of these revoked keys and deleted tenants, and any that subscribes with one of
        them within ``REVOKED_MEMORY`` seconds (it was authenticated just before); how many were cut off."""
        key_ids, tenant_ids = frozenset(keys), frozenset(tenants)
        for listener in self.revocation_listeners:
            listener(key_ids, tenant_ids)
        now = time.monotonic()
        self._revoked = {k: v for k, v in self._revoked.items() if now - v[0] < REVOKED_MEMORY}
        self._revoked.update(dict.fromkeys(key_ids, (now, "the API key was revoked")))
        self._revoked.update(dict.fromkeys(tenant_ids, (now, "the tenant was deleted")))
        cut = 0
        for group in self._subscribers.values():
            for subscription in group:
                if subscription.revoked is None and (reason := self._revocation(subscription)) is not None:
                    subscription.revoke(reason)
                    cut += 1
        return cut

    def _revocation(self, subscription: Subscription) -> str | None:
        for credential in (subscription.tenant_id, subscription.key_id):
            if credential is not None and (found := self._revoked.get(credential)) is not None:
                return found[1]
        return None

    def unsubscribe(self, subscription: Subscription) -> None:
        group = self._subscribers.get(subscription.tenant_id)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self._subscribers[subscription.tenant_id]

    def key_ids(self) -> set[ApiKeyId]:
        """The API keys the open subscriptions came with (those not cut off already)."""
        return {
            subscription.key_id
            for group in self._subscribers.values()
            for subscription in group
            if subscription.key_id is not None and subscription.revoked is None
        }

    def listens_to(self, tenant_id: TenantId) -> bool:
        """Whether a subscriber of this tenant is connected."""
        return tenant_id in self._subscribers

    def publish(self, committed: Committed) -> None:
        if not self._subscribers:
            return
        by_tenant: dict[TenantId, list[Event]] = {}
        for event in committed.events:
            by_tenant.setdefault(event.tenant_id, []).append(event)
        for tenant_id, events in by_tenant.items():
            for subscription in self._subscribers.get(tenant_id, ()):
                subscription.offer(events)

    @property
    def subscribers(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

"""The in-process event bus: committed events fan out to subscribers (WebSocket clients) of their tenant.

A subscriber has a bounded queue. One that falls too far behind is cut off (``overflowed``) instead of making the
publisher wait or buffering without bound: a slow client never slows anyone else, and it can resume from the
history (``GET /api/events?after=``). "Behind" is judged when a commit arrives, so one large commit (a batch of
messages) does not cut off a client that keeps up: a subscriber is cut off when ``max_pending`` events still wait
while its sender is ``blocked`` writing to the client (the client does not read fast enough), or when ten times
that many wait whatever the reason. Events that wait only because this process is busy are not the client's
fault: they go out as soon as the sender runs.
"""

from __future__ import annotations

import asyncio
from collections import deque

from wagate.domain.events import Event, EventFilter
from wagate.ids import TenantId
from wagate.store.base import Committed

HARD_LIMIT_FACTOR = 10


class SlowConsumer(Exception):
    """The subscriber fell more than its queue's size behind."""


class Subscription:
    def __init__(self, bus: LocalBus, tenant_id: TenantId, wanted: EventFilter, max_pending: int) -> None:
        self._bus = bus
        self.tenant_id = tenant_id
        self.wanted = wanted
        self.max_pending = max_pending
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.blocked = False  # set by the sender while a write waits for the client

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

    async def next(self) -> Event:
        """The next event; raises ``SlowConsumer`` once the subscriber has fallen too far behind."""
        while not self._queue:
            if self.overflowed:
                raise SlowConsumer(f"more than {self.max_pending} events were waiting")
            self._ready.clear()
            await self._ready.wait()
        if self.overflowed:
            raise SlowConsumer(f"more than {self.max_pending} events were waiting")
        return self._queue.popleft()

    def pop(self) -> Event | None:
        """The next event if one waits, without waiting; raises ``SlowConsumer`` as ``next`` does."""
        if self.overflowed:
            raise SlowConsumer(f"more than {self.max_pending} events were waiting")
        return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        self._bus.unsubscribe(self)


class LocalBus:
    def __init__(self) -> None:
        self._subscribers: dict[TenantId, set[Subscription]] = {}

    def subscribe(self, tenant_id: TenantId, wanted: EventFilter, *, max_pending: int = 1000) -> Subscription:
        subscription = Subscription(self, tenant_id, wanted, max_pending)
        self._subscribers.setdefault(tenant_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        group = self._subscribers.get(subscription.tenant_id)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self._subscribers[subscription.tenant_id]

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

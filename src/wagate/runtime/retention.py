"""Retention, installation-wide: messages past their tenant's retention and events past the event retention are
deleted every hour, by every node that runs sessions (a delete that another node did first finds nothing: running it
in several places costs a query, not a conflict)."""

from __future__ import annotations

import logging

from wagate.clock import Clock
from wagate.config import Settings
from wagate.periodic import every
from wagate.store.base import Store
from wagate.tasks import TaskSet

__all__ = ["INTERVAL", "Retention"]

log = logging.getLogger("wagate.retention")

INTERVAL = 3600.0  # seconds between two rounds


class Retention:
    """The node's housekeeping over the stored history: a part that starts its two hourly jobs and stops them."""

    def __init__(self, store: Store, settings: Settings, clock: Clock, *, interval: float = INTERVAL) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._interval = interval
        self._jobs = TaskSet()

    async def start(self) -> None:
        self._jobs.spawn(every(self._interval, self.prune_messages, what="message retention"), "message-retention")
        self._jobs.spawn(every(self._interval, self.prune_events, what="event retention"), "event-retention")

    async def stop(self) -> None:
        await self._jobs.cancel()

    async def prune_messages(self) -> int:
        """Delete the messages past each tenant's retention (tenants without one keep theirs)."""
        removed = await self._store.messages.prune_all_tenants(self._clock())
        if removed:
            log.info("message retention: %d message(s) deleted", removed)
        return removed

    async def prune_events(self) -> int:
        """Delete the events older than the event retention whose deliveries are finished."""
        days = self._settings.event_retention_days
        removed = await self._store.events.prune_all_tenants(self._clock() - days * 86400)
        if removed:
            log.info("event retention: %d event(s) older than %g days deleted", removed, days)
        return removed

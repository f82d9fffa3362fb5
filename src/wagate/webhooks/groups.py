"""What the webhook dispatcher holds between the outbox and the sender: each group's deliveries in order, the
endpoints as last read (with a signer per secret), and the retry schedule."""

from __future__ import annotations

import asyncio
import random

from standardwebhooks import Webhook as Signer

from wagate.clock import Clock
from wagate.domain.events import EventFilter, renamed
from wagate.domain.webhooks import Endpoint, Headers, Outgoing, Retries, Webhook
from wagate.ids import SessionId, WebhookId
from wagate.store.base import Store

__all__ = [
    "JITTER",
    "RETRY_SCHEDULE",
    "UNSAID",
    "CachedEndpoint",
    "Endpoints",
    "Group",
    "GroupKey",
    "Unsaid",
    "retries_left",
    "retry_delay",
]

# Seconds to wait after the 1st, 2nd, ... failed attempt (each +-20% jitter): 11 attempts over about 24 hours.
RETRY_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
JITTER = 0.2
GroupKey = tuple[WebhookId, SessionId]


class Unsaid:
    """No attempt of a run told whether the guard lets the endpoint's address through (none was answered)."""


UNSAID = Unsaid()


def retry_delay(failed_attempts: int, rng: random.Random, retries: Retries | None = None) -> float | None:
    """Delay before the next attempt after ``failed_attempts`` failures, on the endpoint's own ``retries`` policy or
    else :data:`RETRY_SCHEDULE`; None when it is used up."""
    if retries is not None:
        delay = retries.delay(failed_attempts)
    elif failed_attempts > len(RETRY_SCHEDULE):
        return None
    else:
        delay = RETRY_SCHEDULE[failed_attempts - 1]
    return None if delay is None else delay * rng.uniform(1 - JITTER, 1 + JITTER)


def retries_left(failed_attempts: int, retries: Retries | None) -> bool:
    """Whether another attempt follows ``failed_attempts`` failures."""
    return failed_attempts <= (len(RETRY_SCHEDULE) if retries is None else retries.attempts)


class CachedEndpoint:
    """An endpoint as the dispatcher last read it, with a signer per secret."""

    __slots__ = ("found", "loaded_at", "signers", "wanted")

    def __init__(self, found: Endpoint, loaded_at: float) -> None:
        self.found = found
        self.loaded_at = loaded_at
        self.signers = {secret: Signer(secret) for secret in (found.secret, found.previous_secret) if secret}
        self.wanted = EventFilter(found.webhook.events)

    def body(self, item: Outgoing) -> str:
        """What ``item`` carries to this endpoint: its event under the name the endpoint wants it by (a ``message``
        to an endpoint that wants ``message.any`` only is named so), the same bytes on every attempt."""
        own = item.delivery.event_type
        name = self.wanted.name_for(own)
        return item.body if name is None or name == own else renamed(item.body, name)

    @property
    def webhook(self) -> Webhook:
        return self.found.webhook

    @property
    def headers(self) -> Headers:
        return self.found.headers

    @property
    def hmac_key(self) -> str | None:
        return self.found.hmac_key

    def secrets(self, now: float) -> tuple[str, ...]:
        return self.found.secrets(now)


class Endpoints:
    """The endpoints as the dispatcher last read them, each kept for ``ttl`` seconds (a change made through the API
    or told by another worker is forgotten at once)."""

    def __init__(self, store: Store, clock: Clock, *, ttl: float) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._kept: dict[WebhookId, CachedEndpoint] = {}

    def cached(self, webhook_id: WebhookId) -> CachedEndpoint | None:
        cached = self._kept.get(webhook_id)
        if cached is not None and self._clock() - cached.loaded_at < self._ttl:
            return cached
        return None

    async def get(self, webhook_id: WebhookId) -> CachedEndpoint | None:
        cached = self.cached(webhook_id)
        if cached is not None:
            return cached
        found = await self._store.webhooks.secret_all_tenants(webhook_id)
        if found is None:
            self._kept.pop(webhook_id, None)
            return None
        endpoint = CachedEndpoint(found, self._clock())
        self._kept[webhook_id] = endpoint
        return endpoint

    def forget(self, webhook_id: WebhookId) -> None:
        self._kept.pop(webhook_id, None)


class Group:
    """The deliveries of one (endpoint, session) this worker holds, oldest first; ``held`` is the worker's set of
    every held delivery, shared by its groups."""

    def __init__(self, key: GroupKey, held: set[int], *, checked: bool) -> None:
        self.key = key
        self.items: list[Outgoing] = []
        self.seqs = held
        self.checked = checked
        self.task: asyncio.Task[None] | None = None
        self.idle_since = 0.0

    def add(self, item: Outgoing) -> None:
        if item.delivery.seq in self.seqs:
            return
        self.seqs.add(item.delivery.seq)
        self.items.append(item)
        if len(self.items) > 1 and self.items[-2].delivery.seq > item.delivery.seq:
            self.items.sort(key=lambda o: o.delivery.seq)

    def remove(self, item: Outgoing, *, recorded: bool = True) -> None:
        """Drop ``item`` (the head, unless an older delivery came in while it was being sent); unless ``recorded``,
        its seq stays held until its outcome is in the table."""
        if self.items[0] is item:
            del self.items[0]
        else:
            self.items.remove(item)
        if recorded:
            self.seqs.discard(item.delivery.seq)

    def replace(self, item: Outgoing, by: Outgoing) -> None:
        self.items[self.items.index(item)] = by

    def due(self, now: float, most: int) -> list[Outgoing]:
        """The head and the deliveries after it that are due too, in order, up to ``most``."""
        run: list[Outgoing] = []
        for item in self.items:
            if len(run) == most or (run and item.delivery.next_attempt_at > now):
                break
            run.append(item)
        return run

    def clear(self) -> list[int]:
        seqs = [item.delivery.seq for item in self.items]
        self.seqs.difference_update(seqs)
        self.items.clear()
        return seqs

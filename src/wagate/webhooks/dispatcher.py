"""Webhook delivery from the durable outbox (Standard Webhooks).

Deliveries are rows committed with the events they carry. The dispatcher sends them per group (endpoint, session),
one at a time and in order, so the events of one session reach an endpoint in the order they happened; groups run
concurrently. It learns of new deliveries two ways: at once from the commit (they were claimed for it in the same
transaction), and by claiming from the table every ``poll_interval`` (after a restart, a dead worker's claims,
retries, redeliveries). Every attempt carries the same ``webhook-id`` and body; only the timestamp and signature
are new. A ``2xx`` delivers, ``410`` disables the endpoint, an address the SSRF guard refuses makes the delivery a dead
letter at once (and marks the endpoint until an attempt gets through), anything else retries on
:data:`RETRY_SCHEDULE`, or the endpoint's own ``retries`` policy (or when ``Retry-After`` says), until the schedule
runs out and the delivery becomes a dead letter.

The requests themselves are signed and sent by :class:`~wagate.webhooks.process.WebhookProcess`'s child process (a
group's due deliveries as one run, in order, stopped at the first failure), or, with ``webhook_sender="inline"``, by
a :class:`~wagate.webhooks.client.WebhookClient` in this process, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from wagate.clock import Clock
from wagate.config import Settings
from wagate.domain.events import Committed
from wagate.domain.webhooks import Outgoing, Retries
from wagate.errors import StoreError
from wagate.ids import WebhookId
from wagate.periodic import every
from wagate.store.base import Store
from wagate.webhooks.client import Attempt, WebhookClient, signed_headers
from wagate.webhooks.groups import (
    JITTER,
    RETRY_SCHEDULE,
    UNSAID,
    CachedEndpoint,
    Endpoints,
    Group,
    GroupKey,
    Unsaid,
    retries_left,
    retry_delay,
)
from wagate.webhooks.process import MAX_RUN, WebhookProcess

STOP_WAIT = 5.0  # seconds a stop waits for the periodic jobs in hand to end

__all__ = ["COMPLETIONS_INTERVAL", "IDLE_GROUP_TTL", "JITTER", "RETRY_SCHEDULE", "STOP_WAIT", "WebhookDispatcher"]

log = logging.getLogger("wagate.webhooks")

IDLE_GROUP_TTL = 60.0
# How often sent deliveries are recorded as delivered, all in one transaction. A crash in between sends those again
# (with the same webhook-id); more often would take the database's single writer from the events' own commits.
COMPLETIONS_INTERVAL = 0.1


class WebhookDispatcher:
    """Sends the outbox's deliveries; one per process that runs sessions."""

    def __init__(self, store: Store, settings: Settings, clock: Clock, owner: str, takeover: str) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.takeover = takeover
        self.rng = random.Random()
        self.outcomes: Counter[str] = Counter()
        # (seconds from a delivery's commit until its successful answer is back here, retries included): metrics
        self.observe_lag: Callable[[float], None] | None = None
        self._groups: dict[GroupKey, Group] = {}
        self._held: set[int] = set()
        self._endpoints = Endpoints(store, clock, ttl=settings.webhook_poll_interval * 30)
        self._done: list[tuple[int, int]] = []
        self._loops: set[asyncio.Task[None]] = set()
        self._client: WebhookClient | None = None
        self._sender: WebhookProcess | None = None
        self._wake = asyncio.Event()

    # lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        timeout, private = self.settings.webhook_timeout, self.settings.webhook_allow_private
        concurrency = self.settings.webhook_concurrency
        if self.settings.webhook_sender == "process":  # started with the first attempt
            self._sender = WebhookProcess(
                timeout=timeout,
                allow_private=private,
                concurrency=concurrency,
                log_level=self.settings.log_level,
                log_format=self.settings.log_format,
            )
        else:
            self._client = WebhookClient(timeout=timeout, allow_private=private, concurrency=concurrency)
        self.store.events.set_claimer(self.owner, self.settings.webhook_claim_ttl)
        self.store.events.listeners.append(self.accept)
        interval = self.settings.webhook_poll_interval
        for coro, name in (
            (every(interval, self.poll, what="webhook poll"), "webhook-poll"),
            (every(self.settings.webhook_claim_ttl / 3, self._renew, what="webhook claims"), "webhook-claims"),
            (every(0.1, self._flush, what="webhook completions"), "webhook-completions"),
            (every(interval, self._sweep, what="webhook sweep"), "webhook-sweep"),
        ):
            task = asyncio.ensure_future(coro)
            task.set_name(name)
            self._loops.add(task)
        await self.poll()

    async def stop(self, grace: float = 2.0) -> None:
        """Stop sending after up to ``grace`` seconds for what is due (the sessions' last status events); record
        what was delivered; give back what was not, so that any worker can take it."""
        self.store.events.set_claimer(None, self.settings.webhook_claim_ttl)
        deadline = asyncio.get_running_loop().time() + grace
        while self._due() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - polls the groups, which have no single event
            await asyncio.sleep(0.02)
        with contextlib.suppress(ValueError):
            self.store.events.listeners.remove(self.accept)
        tasks = [*self._loops, *(g.task for g in self._groups.values() if g.task is not None)]
        for task in tasks:
            task.cancel()  # a periodic job in hand ends first (periodic.to_end), a long one no longer than this
        if tasks:
            done, _ = await asyncio.wait(tasks, timeout=STOP_WAIT)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a loop ends by its cancellation, anything else was logged
        with contextlib.suppress(Exception):
            await self._flush()
            held = [seq for group in self._groups.values() for seq in group.clear()]
            if held:
                await self.store.outbox.release(self.owner, held)
        self._groups.clear()
        if self._client is not None:
            await self._client.close()
        if self._sender is not None:
            await self._sender.close()

    # intake ----------------------------------------------------------------------------------------------------

    def accept(self, committed: Committed) -> None:
        """Commit listener: deliveries this process queued (claimed for it in their transaction)."""
        for item in committed.deliveries:
            self._enqueue(item, checked=False)

    async def poll(self) -> None:
        """Claim due deliveries nobody is sending (after a restart, a dead worker, a retry, a redelivery)."""
        while True:
            claimed = await self.store.outbox.claim(
                self.owner,
                takeover=self.takeover,
                ttl=self.settings.webhook_claim_ttl,
                limit=1000,
                held=self._held.__contains__,
            )
            for item in claimed:
                self._enqueue(item, checked=True)
            self._wake.set()
            if len(claimed) < 1000:
                return

    def _enqueue(self, item: Outgoing, *, checked: bool) -> None:
        group = self._groups.get(item.group)
        if group is None:
            group = self._groups[item.group] = Group(item.group, self._held, checked=checked)
        group.add(item)
        if group.task is None or group.task.done():
            group.task = asyncio.ensure_future(self._run(group))
            group.task.set_name(f"webhook-{item.group[0]}-{item.group[1]}")

    def forget_endpoint(self, webhook_id: WebhookId) -> None:
        """The endpoint changed (disabled, deleted): read it again before its next delivery."""
        self._endpoints.forget(webhook_id)

    async def endpoint_changed(self, webhook_id: WebhookId) -> None:
        """The endpoint changed here (through the API): this dispatcher and the other workers' read it again."""
        self.forget_endpoint(webhook_id)
        await self._tell_peers(webhook_id)

    # one group -------------------------------------------------------------------------------------------------

    async def _run(self, group: Group) -> None:
        try:
            if not group.checked:
                first = group.items[0].delivery
                if await self.store.outbox.pending_before(first.webhook_id, first.session_id, first.seq):
                    # Older deliveries of this group wait for a retry or another worker: they go first, so the
                    # whole group is handed to the poller, which claims it from its oldest delivery.
                    await self._drop(group)
                    return
                group.checked = True
            while group.items:
                if not await self._deliver_head(group):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery group failed; its deliveries go back to the outbox")
            await self._drop(group)
        finally:
            group.idle_since = self.clock()

    async def _deliver_head(self, group: Group) -> bool:
        """Try the group's oldest delivery once it is due; False when the group was given up."""
        item = group.items[0]
        wait = item.delivery.next_attempt_at - self.clock()
        if wait > self.settings.webhook_poll_interval:
            # A retry later on: the group goes back to the outbox rather than keep a task waking up meanwhile (a
            # dead endpoint of a tenant with many sessions would hold one per session); the poller claims it again,
            # from its oldest delivery, once it is due.
            await self._drop(group)
            return False
        if wait > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait, self.settings.webhook_poll_interval))
            return True
        webhook_id = item.delivery.webhook_id
        endpoint = self._endpoints.cached(webhook_id) or await self._endpoints.get(webhook_id)
        if endpoint is None or not endpoint.webhook.enabled:
            await self._drop(group)
            return False
        attempts: list[Attempt | None]
        if self._sender is None:
            sent, attempts = [item], [await self._send(endpoint, item)]
        else:
            # The head and what is due after it go to the sender process as one run, sent in order there.
            now = self.clock()
            sent = group.due(now, MAX_RUN)
            deliveries = [(o.delivery.event_id, endpoint.body(o).encode()) for o in sent]
            url, secrets = endpoint.webhook.url, endpoint.secrets(now)
            attempts = await self._sender.run(url, secrets, deliveries, now, endpoint.headers, endpoint.hmac_key)
        answered = self.clock()
        refused: dict[str, list[Outgoing]] = {}  # by the refusal's reason
        blocked: str | Unsaid | None = UNSAID  # the guard's last word on the endpoint's address in this run
        failure: tuple[Outgoing, Attempt] | None = None
        for item, attempt in zip(sent, attempts, strict=True):
            if attempt is None:  # not attempted (one before it failed): still the group's, for the next round
                break
            if attempt.refused:
                refused.setdefault(attempt.error, []).append(item)
                blocked = attempt.error
                continue
            if attempt.status is not None:  # an answer came: the address got through the guard
                blocked = None
            if not attempt.ok:
                failure = (item, attempt)
                break
            self.outcomes["delivered"] += 1
            if self.observe_lag is not None:
                self.observe_lag(max(answered - item.delivery.created_at, 0.0))
            group.remove(item, recorded=False)
            self._done.append((item.delivery.seq, attempt.status or 200))
        if not isinstance(blocked, Unsaid):  # first: a reader who finds the dead letters finds the endpoint's mark
            await self._mark_blocked(endpoint, blocked)
        for reason, items in refused.items():
            await self._refused(group, endpoint, items, reason)
        if failure is None:
            return True
        item, attempt = failure
        if attempt.gone:
            self.outcomes["gone"] += 1
            log.warning("webhook %s answered 410 Gone: disabled", endpoint.webhook.id)
            await self.store.webhooks.set_disabled(
                endpoint.webhook.tenant_id, endpoint.webhook.id, "the endpoint answered 410 Gone"
            )
            await self._drop(group)
            await self.endpoint_changed(endpoint.webhook.id)  # the other workers stop sending to it too
            return False
        await self._failed(group, item, attempt, endpoint.webhook.retries)
        return True

    async def _refused(self, group: Group, endpoint: CachedEndpoint, items: list[Outgoing], reason: str) -> None:
        """The SSRF guard refused the endpoint's address: no retry on the schedule would mend that (the address
        has to change, or the guard be lifted), so these deliveries are dead letters at once, and the group's next
        deliveries do not wait behind them (each is tried on its own)."""
        self.outcomes["refused"] += len(items)
        log.info("webhook %s: %d delivery(ies) refused, now dead letters (%s)", endpoint.webhook.id, len(items), reason)
        await self.store.outbox.mark_refused([item.delivery.seq for item in items], reason)
        for item in items:
            group.remove(item)

    async def _mark_blocked(self, endpoint: CachedEndpoint, reason: str | None) -> None:
        """Show on the endpoint that the guard refuses its address (``reason``), or no longer does (None), when
        that changed; the other workers read the endpoint again."""
        webhook = endpoint.webhook
        if webhook.blocked_reason == reason:
            return
        at = self.clock() if reason is not None else None
        # At once in the copy, so that the endpoint's other groups do not record it again meanwhile.
        endpoint.found = replace(endpoint.found, webhook=replace(webhook, blocked_reason=reason, blocked_at=at))
        if not await self.store.webhooks.set_blocked(webhook.tenant_id, webhook.id, reason):
            return  # another worker recorded it first
        if reason is not None:
            log.warning("webhook %s: %s; its deliveries are dead letters until that changes", webhook.id, reason)
        else:
            log.info("webhook %s: its address is no longer refused", webhook.id)
        await self.endpoint_changed(webhook.id)

    async def _tell_peers(self, webhook_id: WebhookId) -> None:
        try:
            await self.store.peers.tell_peers(self.owner, [webhook_id])
        except StoreError as exc:  # the change is committed; the others' copies expire on their own
            log.warning("could not tell the other workers that webhook %s changed: %s", webhook_id, exc)

    async def _failed(self, group: Group, item: Outgoing, attempt: Attempt, retries: Retries | None) -> None:
        failures = item.delivery.attempts + 1
        delay = attempt.retry_after if attempt.retry_after is not None else retry_delay(failures, self.rng, retries)
        if not retries_left(failures, retries):
            delay = None  # Retry-After shapes the schedule; it does not extend it forever
        now = self.clock()
        error = attempt.error or f"HTTP {attempt.status}"
        if delay is None:
            self.outcomes["dead"] += 1
            log.warning(
                "webhook delivery %d is a dead letter after %d attempts (%s)", item.delivery.seq, failures, error
            )
            await self.store.outbox.mark_failed(
                item.delivery.seq, attempts=failures, next_attempt_at=now, status=attempt.status, error=error, dead=True
            )
            group.remove(item)
            return
        self.outcomes["failed"] += 1
        log.info("webhook delivery %d failed (%s); attempt %d in %.0fs", item.delivery.seq, error, failures + 1, delay)
        await self.store.outbox.mark_failed(
            item.delivery.seq,
            attempts=failures,
            next_attempt_at=now + delay,
            status=attempt.status,
            error=error,
            dead=False,
        )
        delivery = replace(item.delivery, attempts=failures, next_attempt_at=now + delay, last_error=error)
        group.replace(item, Outgoing(delivery, item.body))

    async def _drop(self, group: Group) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]
        held = group.clear()
        if held:
            await self.store.outbox.release(self.owner, held)

    async def _send(self, endpoint: CachedEndpoint, item: Outgoing) -> Attempt:
        assert self._client is not None
        now = self.clock()
        signers = [endpoint.signers[secret] for secret in endpoint.secrets(now)]
        headers = dict(endpoint.headers)
        body = endpoint.body(item)
        headers.update(signed_headers(signers, item.delivery.event_id, now, body, endpoint.hmac_key))
        return await self._client.post(endpoint.webhook.url, body.encode(), headers, now)

    # housekeeping ----------------------------------------------------------------------------------------------

    async def _flush(self) -> None:
        if not self._done:
            return
        batch, self._done = self._done, []
        by_status: dict[int, list[int]] = {}
        for seq, status in batch:
            by_status.setdefault(status, []).append(seq)
        try:
            for status, seqs in by_status.items():
                await self.store.outbox.mark_delivered(seqs, status)
                self._held.difference_update(seqs)
        except BaseException:
            self._done[:0] = batch  # recorded next round (a delivery recorded late is at worst sent again)
            raise

    async def _renew(self) -> None:
        await self.store.outbox.renew_claims(self.owner, self.settings.webhook_claim_ttl)

    async def _sweep(self) -> None:
        """Forget idle groups (their order is safe in the table) and close long-unused connections."""
        if self._client is not None:
            self._client.prune()
        now = self.clock()
        for key, group in list(self._groups.items()):
            if (
                not group.items
                and (group.task is None or group.task.done())
                and now - group.idle_since > IDLE_GROUP_TTL
            ):
                del self._groups[key]

    def _due(self) -> bool:
        now = self.clock()
        return any(g.items and g.items[0].delivery.next_attempt_at <= now for g in self._groups.values())

    @property
    def backlog(self) -> int:
        return sum(len(group.items) for group in self._groups.values())

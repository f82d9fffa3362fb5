"""Sending a session's queued messages: in order, at the session's rate, each exactly once.

Runs while the session's connection is up. Every message is committed to the queue before anything else happens to
it (the API answered only after that). Before a batch goes to the engine its messages are marked ``sending`` (one
more attempt each), and once the server has them ``sent``. A crash between the two leaves messages in doubt; at the
next connection the engine is asked which of them the server has (``confirm_sent``): those are ``sent``, the others
go again under the same ids. An engine that cannot tell sends them again under the same ids, which WhatsApp's
recipients recognise as one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from wagate.domain import payloads
from wagate.domain.content import content_of
from wagate.domain.events import Event, EventType
from wagate.domain.messages import Message, MessageStatus, StatusUpdate
from wagate.domain.ratelimit import TokenBucket
from wagate.domain.sessions import Session
from wagate.engines.base import Connection, EngineUnavailable, OutgoingMessage, SendRejected
from wagate.errors import CryptoError, LeaseLost, StoreUnavailable
from wagate.store.contracts.messages import MessageStore
from wagate.supervisor.context import RunnerContext, RunnerView

__all__ = ["BATCH", "STORE_PAUSE", "STORE_PAUSE_LONGEST", "OutboundSender", "fail_queued"]

log = logging.getLogger("wagate.session")

BATCH = 50
STORE_PAUSE = 0.5  # seconds the sender waits after the database refused it, doubling up to...
STORE_PAUSE_LONGEST = 4.0


async def fail_queued(messages: MessageStore, session: Session, why: str) -> None:
    """The session's link is gone: its queued messages fail rather than go out from a later link."""
    failed = await messages.fail_queued(session.tenant_id, session.id, session.name, why)
    if failed:
        log.info("%d queued message(s) of %s failed: %s", failed, session.id, why)


class OutboundSender:
    def __init__(self, ctx: RunnerContext, runner: RunnerView, conn: Connection) -> None:
        self._runner = runner
        self._ctx = ctx
        self._conn = conn
        config = runner.session.config
        settings = ctx.settings
        rate = float(config.get("send_rate") or settings.send_rate) / 60.0
        self.bucket = TokenBucket(rate, int(config.get("send_burst") or settings.send_burst))
        self._wake = asyncio.Event()
        self._wake.set()
        self._stopping = False
        self._idle = False
        self.task: asyncio.Task[None] | None = None

    def start(self, *, idle: bool = False) -> None:
        """Start sending. ``idle``: nothing is queued (known from the bulk query of a mass start), so no task runs
        until the first ``wake``: ten thousand restored sessions do not each keep a sender waiting."""
        if idle:
            self._idle = True
            return
        self.task = asyncio.create_task(self._run(), name=f"send-{self._runner.session.id}")

    def wake(self) -> None:
        if self._idle and not self._stopping:
            self._idle = False
            self.start()
        self._wake.set()

    async def stop(self, grace: float = 3.0) -> None:
        """Let the batch in hand finish (its results commit), then end; cancel only after ``grace`` seconds."""
        self._stopping = True
        self._wake.set()
        task, self.task = self.task, None
        if task is None or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        pause = STORE_PAUSE
        while not self._stopping:
            try:
                await self._loop()
                return
            except EngineUnavailable:
                return  # the connection ended: what was handed over is settled at the next connection
            except LeaseLost:
                # Another worker owns the session now and sends its queue; the runner learns it at its next write.
                self._runner.log.warning("lease lost: queued messages are left to the session's new owner")
                return
            except StoreUnavailable as exc:
                # Sending goes on once the database takes writes; what was handed to the engine meanwhile is in
                # doubt until then, and settled first (asked of the engine, not sent twice).
                self._runner.log.warning("sending paused for %.1fs: %s", pause, exc)
                await self._pause(pause)
                pause = min(STORE_PAUSE_LONGEST, pause * 2)
            except asyncio.CancelledError:
                raise
            except Exception:  # the session keeps running; queued messages wait for the next connection
                self._runner.log.exception("sending queued messages failed")
                return

    async def _loop(self) -> None:
        settled = False
        while not self._stopping:
            self._wake.clear()
            session = self._runner.session
            queued = await self._ctx.messages.queued(session.tenant_id, session.id, BATCH)
            in_doubt = [m for m in queued if m.status is MessageStatus.SENDING]
            if in_doubt and not settled:
                await self._settle(in_doubt)
                settled = True
                continue
            pending = [m for m in queued if m.status is MessageStatus.PENDING]
            if not pending:
                await self._wake.wait()
                continue
            now = self._ctx.clock()
            allowed = min(self.bucket.available(now), len(pending))
            if allowed == 0:
                await self._pause(self.bucket.wait(now))
                continue
            await self._send(pending[:allowed])

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_or_forever(), seconds)

    async def _stop_or_forever(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    async def _settle(self, in_doubt: Sequence[Message]) -> None:
        """Decide what became of messages handed to the engine when the gateway stopped or the connection broke."""
        known = await self._conn.confirm_sent([m.id for m in in_doubt])
        limit = self._ctx.settings.send_max_attempts
        updates = []
        for message in in_doubt:
            if known is not None and message.id in known:
                updates.append(self._update(message, MessageStatus.SENT, timestamp=known[message.id]))
            elif message.attempts >= limit:
                updates.append(self._update(message, MessageStatus.FAILED, error=f"not sent after {limit} attempts"))
            else:
                updates.append(self._update(message, MessageStatus.PENDING))
        confirmed = sum(1 for u in updates if u.status is MessageStatus.SENT)
        self._runner.log.info("%d message(s) in doubt: %d had reached the server", len(in_doubt), confirmed)
        await self._ctx.messages.update_status(updates)

    async def _send(self, batch: Sequence[Message]) -> None:
        session, lease = self._runner.session, self._runner.lease
        moved = set(
            await self._ctx.messages.mark_sending(
                session.tenant_id, session.id, [m.id for m in batch], owner=lease.owner or "", epoch=lease.epoch
            )
        )
        batch = [m for m in batch if m.id in moved]  # what another sender took first is not sent twice
        self.bucket.take(self._ctx.clock(), len(batch))
        results: list[StatusUpdate] = []
        sent_events: list[Event] = []
        try:
            for message in batch:
                try:
                    outgoing, body = await self._outgoing(message)
                    sent = await self._conn.send(outgoing)
                except SendRejected as exc:
                    results.append(self._update(message, MessageStatus.FAILED, error=str(exc)[:300]))
                else:
                    results.append(self._update(message, MessageStatus.SENT, timestamp=sent.timestamp))
                    sent_events.append(self._sent_event(message, body, sent.timestamp))
                self._runner.last_activity = self._ctx.clock()
        finally:  # what the server has is recorded even when the connection broke in the middle
            await self._ctx.messages.update_status(results, events=sent_events)

    def _sent_event(self, message: Message, body: Mapping[str, Any], timestamp: float) -> Event:
        """``message.any`` for a message the session sent (WAHA reports the session's own messages so too)."""
        session = self._runner.session
        me = str(session.me["id"]) if session.me and session.me.get("id") else None
        payload = payloads.own_message(
            message_id=message.id, chat=message.chat_id, me=me, body=body, kind=message.kind.value, timestamp=timestamp
        )
        now = self._ctx.clock()
        return Event.new(EventType.MESSAGE_ANY, session.tenant_id, session.id, session.name, now, payload)

    async def _outgoing(self, message: Message) -> tuple[OutgoingMessage, dict[str, Any]]:
        """What the engine sends, and the body it was built from; ``SendRejected`` (the message fails, alone) when
        its stored body or media is missing or damaged."""
        session = self._runner.session
        bodies = self._ctx.bodies
        body = await bodies.readable_body(session.tenant_id, session.id, message.id, message.body)
        if body is None:
            raise SendRejected("the message's stored body is damaged and cannot be read")
        media = None
        if "media" in body:
            sealed = await self._ctx.messages.media(session.tenant_id, session.id, message.id)
            if sealed is None:
                raise SendRejected("the message's media is missing")
            try:
                media = await bodies.open_media(session.tenant_id, session.id, message.id, sealed)
            except CryptoError:
                raise SendRejected("the message's stored media is damaged and cannot be read") from None
        try:
            content = content_of(message.kind, body, media)
        except (ValueError, KeyError, TypeError):
            raise SendRejected(f"the message's stored body is not a {message.kind.value} message") from None
        return OutgoingMessage(message.id, message.chat_id, content, reply_to=body.get("replyTo")), body

    def _update(
        self, message: Message, status: MessageStatus, *, timestamp: float | None = None, error: str | None = None
    ) -> StatusUpdate:
        session = self._runner.session
        return StatusUpdate(
            session.tenant_id, session.id, session.name, message.id, status, error=error, timestamp=timestamp
        )

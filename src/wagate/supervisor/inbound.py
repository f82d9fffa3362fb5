"""What a session receives, stored before the engine acknowledges it.

Received messages are sealed and committed with their events and the auth-state changes they brought (a ratchet
advanced), in one transaction fenced by the session's lease, through the status recorder (group commit); receipts
move the session's sent messages forward. The engine acknowledges only what these calls returned from, so nothing
acknowledged is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wagate.domain import payloads
from wagate.domain.content import Contacts, Location, Poll, described, kind_of_content
from wagate.domain.events import Event, EventType
from wagate.domain.messages import InboundMessage, MessageKind, MessageStatus, StatusUpdate, kind_of
from wagate.engines.base import EngineNotice, MessageAck, MessageReceived, StateChanges
from wagate.supervisor.context import RunnerContext, RunnerView

__all__ = ["Inbound"]


class Inbound:
    """One session's inbound recording, for its runner."""

    def __init__(self, ctx: RunnerContext, runner: RunnerView) -> None:
        self._ctx = ctx
        self._runner = runner

    def event(self, kind: EventType, payload: dict[str, Any]) -> Event:
        session = self._runner.session
        return Event.new(kind, session.tenant_id, session.id, session.name, self._ctx.clock(), payload)

    async def messages(
        self, received: Sequence[MessageReceived], notices: Sequence[EngineNotice], state: StateChanges | None = None
    ) -> None:
        """Store received messages (sealed) with their events and the engine's ``state`` (fenced), in one
        transaction, before the engine acks them."""
        runner = self._runner
        session = runner.session
        inbound = []
        for event in received:
            body = {"text": event.text, "media": event.media, "extra": event.extra or None}
            if event.content is not None:
                body.update(described(event.content))
            if event.from_me:
                body["source"] = "app"  # the account's own, written in a WhatsApp app: not queued by the API
            sealed = await self._ctx.bodies.seal_body(session.tenant_id, session.id, event.message_id, body)
            media_type = (event.media or {}).get("mimetype")
            inbound.append(
                InboundMessage(
                    tenant_id=session.tenant_id,
                    session_id=session.id,
                    id=event.message_id,
                    chat_id=event.chat,
                    sender=event.sender,
                    push_name=event.push_name,
                    kind=_kind(event.content, media_type),
                    timestamp=event.timestamp,
                    body=sealed,
                    event=self._received_event(event),
                    from_me=event.from_me,
                )
            )
        notes = [self.event(EventType.ENGINE_EVENT, payloads.engine_event(e.kind, e.data)) for e in notices]
        auth = await self._ctx.vault(session, runner.lease.epoch).sealed_write(state) if state else None
        await self._ctx.recorder.append(notes, inbound, auth)
        if received:
            runner.last_activity = self._ctx.clock()

    def _received_event(self, event: MessageReceived) -> Event:
        me = self._runner.session.me
        payload = payloads.message(
            message_id=event.message_id,
            chat=event.chat,
            sender=event.sender,
            me=str(me["id"]) if me and me.get("id") else None,
            push_name=event.push_name,
            text=event.text,
            timestamp=event.timestamp,
            media=event.media,
            extra=event.extra,
            content=event.content,
            from_me=event.from_me,
        )
        # WAHA reports the account's own messages in message.any only (source app: not sent through the API).
        return self.event(EventType.MESSAGE_ANY if event.from_me else EventType.MESSAGE, payload)

    async def receipts(self, acks: Sequence[MessageAck]) -> None:
        """Receipts move this session's sent messages forward (each change with its ``message.ack`` event)."""
        runner = self._runner
        session = runner.session
        updates = []
        for ack in acks:
            try:
                status = MessageStatus(ack.status)
            except ValueError:
                runner.log.debug("ignored a receipt with status %r", ack.status)
                continue
            updates.append(
                StatusUpdate(session.tenant_id, session.id, session.name, ack.message_id, status, timestamp=None)
            )
        await self._ctx.messages.update_status(updates)
        runner.last_activity = self._ctx.clock()


def _kind(content: Location | Contacts | Poll | None, media_type: str | None) -> MessageKind:
    if content is not None:
        return kind_of_content(content)
    return kind_of(media_type) if media_type else MessageKind.TEXT

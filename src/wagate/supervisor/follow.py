"""What a session's engine connection reports, followed: QR codes, the link, the connection coming up (and its
sender starting) or the engine reconnecting by itself, messages and receipts (recorded before the engine
acknowledges them), the contact and group directory, decryption failures and damaged records (the repair path).

``ConnectionFollower`` is the base of the session's runner (``wagate.supervisor.runner``), which owns the loop
around connections; the state both read is set up here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from wagate.domain import payloads
from wagate.domain.events import Event, EventType
from wagate.domain.sessions import Lease, Reason, Session, Status
from wagate.engines.base import (
    Connected,
    Connection,
    ContactStateDamaged,
    ContactsUpdated,
    DecryptFailed,
    EngineEvent,
    EngineNotice,
    GroupsUpdated,
    MessageAck,
    MessageReceived,
    Paired,
    PairingCode,
    QrCode,
    Reconnecting,
    StateChanges,
)
from wagate.store.vault import Vault
from wagate.supervisor.commands import Orders
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.inbound import Inbound
from wagate.supervisor.outbound import OutboundSender
from wagate.supervisor.repair import Repair
from wagate.supervisor.status import StatusWriter

__all__ = ["ConnectionFollower"]

log = logging.getLogger("wagate.session")


class ConnectionFollower:
    """One session's connection followed, event by event; the runner drives the connections themselves."""

    _repair: Repair  # the runner's: it orders the quarantines

    def __init__(self, ctx: RunnerContext, session: Session, lease: Lease) -> None:
        self._ctx = ctx
        self.lease = lease
        self.log = logging.LoggerAdapter(log, {"session_name": session.name})
        self._status = StatusWriter(ctx, session, lease, self.log)
        self._orders = Orders()
        self._inbound = Inbound(ctx, self)
        self.conn: Connection | None = None
        self.qr: QrCode | None = None
        self.pairing_code: str | None = None
        self.sender: OutboundSender | None = None
        self.last_activity = ctx.clock()
        self.progress_at = ctx.clock()  # when the session last moved on: the health monitor's measure of stuck
        self.worked = False  # the current run got the session WORKING
        self._ended: EngineEvent | None = None  # the closing event of the current connection
        self._connected_at: float | None = None
        self._qr_rounds = 0
        self._scan_reason: Reason | None = None  # shown with SCAN_QR_CODE after a quarantine
        self._engine_reconnecting = False  # the engine lost its socket and reconnects by itself

    @property
    def session(self) -> Session:
        """The session as this runner last wrote or was given it."""
        return self._status.session

    @property
    def status(self) -> Status:
        """The status this runner last recorded (``observed`` tells how the session really is)."""
        return self._status.status

    @status.setter
    def status(self, status: Status) -> None:
        self._status.status = status

    def vault(self) -> Vault:
        """The session's auth state, fenced by this runner's lease."""
        return self._ctx.vault(self.session, self.lease.epoch)

    def event(self, kind: EventType, payload: dict[str, Any]) -> Event:
        """An event of this session, now."""
        return self._inbound.event(kind, payload)

    # events ----------------------------------------------------------------------------------------------------

    async def _on_events(self, events: Sequence[EngineEvent], state: StateChanges | None = None) -> None:
        """Several events at once (a batch of messages): what they report, and the auth-state changes that go with
        them, commit in one transaction."""
        received = [e for e in events if isinstance(e, MessageReceived)]
        notices = [e for e in events if isinstance(e, EngineNotice)]
        if received or notices or state:
            await self._inbound.messages(received, notices, state)
        acks = [e for e in events if isinstance(e, MessageAck)]
        if acks:
            await self._inbound.receipts(acks)
        for event in events:
            if not isinstance(event, MessageReceived | EngineNotice | MessageAck):
                await self._on_event(event)

    def _start_sender(self) -> None:
        if self.sender is None and self.conn is not None:
            self.sender = OutboundSender(self._ctx, self, self.conn)
            self.sender.start(idle=self._ctx.outbox.known_empty(self.session.id))

    async def _stop_sender(self) -> None:
        sender, self.sender = self.sender, None
        if sender is not None:
            await sender.stop()

    async def _on_event(self, event: EngineEvent) -> None:
        self.progress_at = self._ctx.clock()  # the engine is doing something: not stuck
        if event.closing:
            self._ended = event
            self._orders.wake()
        elif isinstance(event, QrCode):
            self.qr = event
            qr_event = self.event(EventType.SESSION_QR, payloads.session_qr(event.expires_at))
            if self.status is Status.SCAN_QR_CODE:
                await self._ctx.recorder.append([qr_event])
            else:
                note = self._status.note if self._scan_reason else None
                await self._set(Status.SCAN_QR_CODE, self._scan_reason, note=note, events=(qr_event,))
        elif isinstance(event, PairingCode):
            self.pairing_code = event.code
        elif isinstance(event, Paired):
            self.qr = None
            paired = self.event(EventType.SESSION_PAIRED, payloads.session_paired(event.me.as_dict()))
            await self._set(Status.STARTING, None, me=event.me.as_dict(), note="linked; connecting", events=(paired,))
        elif isinstance(event, Connected):
            self.qr = None
            self._connected_at = self.last_activity = self._ctx.clock()
            self._qr_rounds = 0
            self._scan_reason = None
            self._engine_reconnecting = False
            self._repair.restored = False
            await self._set(Status.WORKING, None, me=event.me.as_dict(), note=None)
            self.worked = True
            self._start_sender()
        elif isinstance(event, Reconnecting):
            await self._stop_sender()
            self._engine_reconnecting = True
            await self._set(Status.STARTING, None, note=event.reason)
        elif isinstance(event, MessageReceived | MessageAck | EngineNotice):
            await self._on_events([event])
        elif isinstance(event, ContactsUpdated):
            await self._ctx.directory.put_contacts(self.session.tenant_id, self.session.id, event.contacts)
        elif isinstance(event, GroupsUpdated):
            await self._ctx.directory.put_groups(self.session.tenant_id, self.session.id, event.groups)
        elif isinstance(event, DecryptFailed):
            await self._repair.decrypt_failed(event)
        elif isinstance(event, ContactStateDamaged):
            await self._repair.contact_damaged(event)

    async def _set(
        self,
        status: Status,
        reason: Reason | None,
        *,
        me: dict[str, Any] | None = None,
        clear_me: bool = False,
        note: str | None = None,
        detail: dict[str, Any] | None = None,
        events: tuple[Event, ...] = (),
    ) -> None:
        """Record a status change, fenced by the lease; raises LeaseLost when refused."""
        moved = await self._status.set(
            status, reason, me=me, clear_me=clear_me, note=note, detail=detail, events=events
        )
        if moved:
            self.progress_at = self._ctx.clock()

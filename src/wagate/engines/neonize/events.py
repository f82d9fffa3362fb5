"""The reading side of a neonize connection: what Go reports, handled one by one in the order it came.

neonize calls back on the event loop; the callbacks only queue what they get (a QR code, a protobuf event, the end
of the Go call), and one task reads the queue. Message-like events of a batch are reported together; receipts turn
into acknowledgements under the gateway's own message ids (:data:`SENT_NS`); a state change (paired, connected, a
drop, an end) is reported after what came before it. QR codes expire by the connection's own timer, since whatsmeow
gives up a login without saying so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from neonize.events import UndecryptableMessageEv
from neonize.proto import Neonize_pb2 as nz

from wagate.engines.base import (
    Connected,
    Disconnected,
    EngineConnectError,
    EngineContext,
    EngineEvent,
    Me,
    MessageAck,
    Paired,
    QrCode,
    Reconnecting,
)
from wagate.engines.neonize import mapping
from wagate.engines.neonize.ffi import FfiGate, connect_error_reason
from wagate.engines.neonize.snapshot import Snapshots
from wagate.errors import DamagedRecord

__all__ = ["FIRST_QR_TTL", "NEXT_QR_TTL", "QR_GRACE", "SENT_NS", "EventReader"]

# whatsmeow's QR codes: the first is valid 60 s, each next one 20 s; when none follows, the login has timed out.
FIRST_QR_TTL = 60.0
NEXT_QR_TTL = 20.0
QR_GRACE = 5.0
SENT_NS = "sent"  # WhatsApp's id of each message sent -> the gateway's id, for receipts

log = logging.getLogger("wagate.engine.neonize")

_QR = "qr"
_ENDED = "ended"


class EventReader:
    """A connection's queue of what Go reported, its reader, and the state the reports change; the connection
    (:class:`~wagate.engines.neonize.engine.NeonizeConnection`) starts the client that fills it."""

    def __init__(self, ctx: EngineContext, snapshots: Snapshots, gate: FfiGate) -> None:
        self._ctx = ctx
        self.snapshots = snapshots
        self._gate = gate
        self._client: Any = None  # neonize.aioze.client.NewAClient
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._ready: asyncio.Future[None] | None = None
        self._qr_timer: asyncio.TimerHandle | None = None
        self._qr_count = 0
        self._registering = False
        self._closing = False
        self._ended = False
        self._me: Me | None = None

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        self._queue.put_nowait((_ENDED, error))

    def _subscribe(self, client: Any) -> None:
        async def on_qr(_: Any, data: bytes) -> None:
            self._queue.put_nowait((_QR, data))

        async def on_event(_: Any, event: Any) -> None:
            self._queue.put_nowait(("event", event))  # in the order Go reported them: handled one by one

        client.event.qr(on_qr)
        for kind in (
            nz.PairStatus,
            nz.Connected,
            nz.Disconnected,
            nz.LoggedOut,
            nz.StreamReplaced,
            nz.ConnectFailure,
            nz.TemporaryBan,
            nz.ClientOutdated,
            nz.StreamError,
            nz.KeepAliveTimeout,
            nz.KeepAliveRestored,
            nz.Message,
            nz.Receipt,
            *mapping.NOTICE_EVENTS,
        ):
            client.event(kind)(on_event)
        client.event(UndecryptableMessageEv)(on_event)  # the per-message decryption failure

    async def _read(self) -> None:
        failure: Exception | None = None
        try:
            while not self._ended:
                kind, item = await self._queue.get()
                batch = [(kind, item)]
                while not self._queue.empty() and len(batch) < 200:
                    batch.append(self._queue.get_nowait())
                await self._handle(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported to the supervisor, which decides (LeaseLost ends the session's run)
            failure = exc
            log.warning("session %s: handling a neonize event failed: %r", self._ctx.session_id, exc)
        if failure is not None and not self._ended and not self._closing:
            await self._end(Disconnected(f"engine failure: {failure}", retryable=True, error=failure))

    async def _handle(self, batch: Sequence[tuple[str, Any]]) -> None:
        pending: list[EngineEvent] = []  # message-like events of this batch, reported together
        receipts: list[mapping.Receipts] = []
        for kind, item in batch:
            if self._ended or self._closing:
                return  # the connection ended, or we are closing it: nothing more is reported
            if kind == _QR:
                await self._flush(pending, receipts)
                await self._on_qr(item)
            elif kind == _ENDED:
                await self._flush(pending, receipts)
                await self._on_ended(item)
            elif isinstance(item, nz.Message):
                if (received := mapping.received(item)) is not None:
                    pending.append(received)
            elif isinstance(item, nz.UndecryptableMessage):
                pending.append(mapping.undecryptable(item))
            elif isinstance(item, nz.Receipt):
                if (receipt := mapping.receipts(item)) is not None:
                    receipts.append(receipt)
            else:
                await self._flush(pending, receipts)
                await self._on_state(item)
        await self._flush(pending, receipts)

    async def _flush(self, pending: list[EngineEvent], receipts: list[mapping.Receipts]) -> None:
        if receipts:
            pending.extend(await self._acks(receipts))
            receipts.clear()
        if pending:
            events, pending[:] = list(pending), []
            await self._ctx.emit_many(events)

    async def _acks(self, receipts: Sequence[mapping.Receipts]) -> list[MessageAck]:
        """Receipts for messages sent through the gateway, under the gateway's ids."""
        ids = sorted({i for r in receipts for i in r.whatsapp_ids})
        try:
            ours = await self._ctx.auth.get_many(SENT_NS, ids)
        except DamagedRecord as exc:  # those messages' receipts cannot be told: dropped, the rest goes on
            log.warning("session %s: %d damaged sent-message record(s) dropped", self._ctx.session_id, len(exc.keys))
            await self._ctx.auth.delete_many(SENT_NS, exc.keys)
            ours = exc.readable
        acks = [
            MessageAck(ours[i].decode(), r.status, r.timestamp) for r in receipts for i in r.whatsapp_ids if i in ours
        ]
        done = sorted({i for r in receipts if r.status == "read" for i in r.whatsapp_ids if i in ours})
        if done:  # read is the last receipt a message gets
            await self._ctx.auth.delete_many(SENT_NS, done)
        return acks

    async def _on_state(self, item: Any) -> None:
        if isinstance(item, nz.PairStatus) and item.Status == nz.PairStatus.PStatus.SUCCESS:
            self._cancel_qr_timer()
            self._registering = False
            await self.snapshots.take(force=True)  # the new link is in the vault before anyone hears of it
            await self._ctx.emit(Paired(mapping.me_from(nz.Device(JID=item.ID, PushName=""))))
        elif isinstance(item, nz.Connected):
            self._cancel_qr_timer()
            self._registering = False
            await self.snapshots.take(force=True)
            await self._ctx.emit(Connected(await self._whoami()))
            self._resolve()
        elif isinstance(item, nz.Disconnected):
            if not self._closing and not self._registering:
                await self._ctx.emit(Reconnecting("the connection to WhatsApp dropped; whatsmeow is reconnecting"))
        elif (event := mapping.closing(item, self._ctx.clock())) is not None:
            await self._end(event)
        elif (notice := mapping.notice(item)) is not None:
            await self._ctx.emit(notice)

    async def _whoami(self) -> Me:
        device = self._client.me
        if device is None:
            async with self._gate.shared():
                device = await self._client.get_me()
        me = mapping.me_from(device if isinstance(device, nz.Device) else nz.Device())
        self._me = me
        return me

    async def _on_qr(self, data: bytes) -> None:
        self._registering = True
        self._qr_count += 1
        ttl = FIRST_QR_TTL if self._qr_count == 1 else NEXT_QR_TTL
        self._cancel_qr_timer()
        loop = asyncio.get_running_loop()
        self._qr_timer = loop.call_later(ttl + QR_GRACE, self._qr_expired)
        await self._ctx.emit(QrCode(data.decode(), self._ctx.clock() + ttl))
        self._resolve()

    def _qr_expired(self) -> None:
        """No new code came after the last one expired: whatsmeow gave up the login without saying so."""
        self._qr_timer = None
        if self._registering and not self._ended and not self._closing:
            self._queue.put_nowait((_ENDED, _QrTimeout()))

    def _cancel_qr_timer(self) -> None:
        if self._qr_timer is not None:
            self._qr_timer.cancel()
            self._qr_timer = None

    async def _on_ended(self, error: BaseException | None) -> None:
        """The Go call returned: a failed start, or the end of a session we did not stop."""
        if self._closing:
            return
        if isinstance(error, _QrTimeout):
            await self._end(Disconnected("qr_timeout", retryable=False))
            return
        reason = connect_error_reason(str(error)) if error is not None else "whatsmeow stopped the session"
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(EngineConnectError(reason))
            self._ended = True
            return
        await self._end(Disconnected(reason, retryable=True))

    def _resolve(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    async def _end(self, event: EngineEvent) -> None:
        """Report the closing event (also before ``connect`` returned: the runner takes it right after)."""
        if self._ended:
            return
        self._ended = True
        self._cancel_qr_timer()
        await self._ctx.emit(event)
        self._resolve()


class _QrTimeout(Exception):
    """No QR code followed the last one in time: whatsmeow gave up the login."""

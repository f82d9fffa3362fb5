"""The ``sim`` engine: a WhatsApp-like client of the simulator, over a WebSocket on loopback.

Order of work for inbound messages (DESIGN, principle 3): verify against the ratchet in memory, hand the batch to the
supervisor with the ratchets it advanced (``emit_many`` returns once both are committed, in one transaction), then
acknowledge (:mod:`wagate.engines.sim.inbound`). A crash anywhere in between leads to a redelivery that is either
verified again (nothing was committed) or recognised as already processed (counter not ahead), never to a lost message
or a "Bad MAC".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

from wagate.domain.content import Contacts, Content, Location, Media, Poll, Text
from wagate.domain.messages import Contact, Group, MessageKind
from wagate.engines.base import (
    Connected,
    Connection,
    ContactsUpdated,
    DeviceStateDamaged,
    Disconnected,
    Engine,
    EngineConnectError,
    EngineContext,
    EngineEvent,
    EngineUnavailable,
    GroupsUpdated,
    LoggedOut,
    Me,
    MessageAck,
    OutgoingMessage,
    Paired,
    PairingCode,
    QrCode,
    Replaced,
    SendRejected,
    SentMessage,
    TemporarilyBanned,
)
from wagate.engines.sim.inbound import CHAIN_NS, InboundChains
from wagate.engines.sim.protocol import frame
from wagate.engines.sim.wire import HandshakeError, SocketClosed, open_socket
from wagate.errors import DamagedRecord

__all__ = ["CHAIN_NS", "CREDS", "MAX_BATCH", "REPLY_TIMEOUT", "SimConnection", "SimEngine"]

CREDS = ("creds", "device")
REPLY_TIMEOUT = 10.0
MAX_BATCH = 512  # messages handled in one batch when frames wait (the simulator keeps 256 in flight by default)


def _me(data: dict[str, Any]) -> Me:
    return Me(id=str(data["id"]), phone=str(data["phone"]), push_name=data.get("pushName"))


class SimEngine(Engine):
    name = "sim"
    connect_namespace = CREDS[0]

    def __init__(self, url: str) -> None:
        """``url``: the simulator's base URL (``http://host:port`` or ``ws://host:port/path-to-ws``)."""
        base = url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[4:] + "/ws"
        self.url = base

    def open(self, ctx: EngineContext) -> SimConnection:
        return SimConnection(self.url, ctx)


class SimConnection(InboundChains, Connection):
    """One login at the simulator: its socket, the frames it reads, and what the gateway asks of it; the messages
    from contacts are :class:`~wagate.engines.sim.inbound.InboundChains`'s."""

    def __init__(self, url: str, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self._url = url
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._registering = False
        self._closing = False  # we asked to close: report nothing more
        self._ended = False  # a closing event was emitted
        self._receipts: list[dict[str, Any]] = []  # receipts waiting for their commit (see _on_receipts)
        self._receipting: asyncio.Task[None] | None = None
        self._failure: Exception | None = None  # the receipts' commit failed: the connection ends with it

    # lifecycle -------------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        try:
            stored = await self._ctx.auth.get_many(CREDS[0], [CREDS[1]])
        except DamagedRecord as exc:
            await self._end(DeviceStateDamaged(exc.records))  # no login without them: the supervisor decides
            return
        credentials = json.loads(stored[CREDS[1]]) if CREDS[1] in stored else None
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):  # one deadline for the socket and the login
                first = await self._login(credentials)
        except TimeoutError:
            await self._abort()
            phase = "answer the login" if self._ws is not None else "accept the connection"
            raise EngineConnectError(f"the simulator at {self._url} did not {phase} in time") from None
        if first.get("type") == "error":
            await self._abort()
            raise EngineConnectError(f"the simulator refused the connection ({first.get('code')})")
        self._reader = asyncio.create_task(self._read(first), name=f"sim-read-{self._ctx.session_id}")

    async def _login(self, credentials: dict[str, Any] | None) -> dict[str, Any]:
        try:
            self._ws = await open_socket(self._url)
        except (OSError, HandshakeError, ValueError) as exc:
            raise EngineConnectError(f"cannot reach the simulator at {self._url}: {exc}") from None
        if credentials is not None:
            self._secret = bytes.fromhex(credentials["secret"])
            hello = {"id": credentials["id"], "secret": credentials["secret"]}
        else:
            hello = None
            self._registering = True
        try:
            await self._ws.send(frame("hello", device=hello, owner=self._ctx.tenant_id, client=self._client()))
            first: dict[str, Any] = json.loads(await self._ws.recv())
        except SocketClosed as exc:
            await self._abort()
            raise EngineConnectError(f"the simulator did not answer the login: {exc}") from None
        return first

    def _client(self) -> dict[str, Any]:
        """What the connection tells the simulator of itself, as a real one would show it: the device's name and
        the proxy it goes through (the simulator records them, so a test sees what reached the engine)."""
        client = self._ctx.config.get("client") or {}
        proxy = self._ctx.proxy
        return {"deviceName": client.get("deviceName"), "proxy": proxy.url() if proxy is not None else None}

    async def disconnect(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close(grace=2.0)
        for task in (self._reader, self._receipting):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def logout(self) -> None:
        if self._ws is None or self._registering:
            await self.disconnect()
            return
        self._closing = True
        with contextlib.suppress(SocketClosed):
            await self._ws.send(frame("logout"))
            await asyncio.wait_for(self._ws.wait_closed(), REPLY_TIMEOUT)
        await self.disconnect()

    async def _abort(self) -> None:
        if self._ws is not None:
            await self._ws.close(1011, "client error", grace=0)

    # operations ------------------------------------------------------------------------------------------------

    async def request_pairing_code(self, phone: str) -> str:
        if not self._registering or self._ws is None:
            raise EngineUnavailable("a pairing code can be requested only while the session waits to be linked")
        reply = await self._request("pairing_code", frame("pair_phone", phone=phone))
        if reply.get("type") == "error":
            raise EngineUnavailable(str(reply.get("detail", "the simulator refused the phone number")))
        code = str(reply["code"])
        await self._ctx.emit(PairingCode(code))
        return code

    async def send(self, message: OutgoingMessage) -> SentMessage:
        body: dict[str, Any] = {"id": message.id, "to": message.chat, **_wire(message.content)}
        if message.reply_to is not None:
            body["reply_to"] = message.reply_to
        reply = await self._ask("send", body)
        if reply.get("type") == "send_error":
            raise SendRejected(str(reply.get("reason", "refused by the server")))
        return SentMessage(str(reply["id"]), float(reply["ts"]))

    async def confirm_sent(self, message_ids: Sequence[str]) -> dict[str, float] | None:
        reply = await self._ask("sent_query", {"ids": list(message_ids)})
        return {str(k): float(v) for k, v in reply.get("items", {}).items()}

    async def _ask(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a request frame with a fresh ``ref`` and wait for the frame that answers it."""
        if self._ws is None or self._registering:
            raise EngineUnavailable("the session is not logged in")
        ref = secrets.token_hex(8)
        return await self._request(f"ref:{ref}", frame(kind, ref=ref, **body))

    async def _request(self, key: str, payload: str) -> dict[str, Any]:
        assert self._ws is not None
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await self._ws.send(payload)
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        except (SocketClosed, TimeoutError) as exc:
            raise EngineUnavailable(f"the simulator did not answer: {exc}") from None
        finally:
            self._waiting.pop(key, None)

    # reading ---------------------------------------------------------------------------------------------------

    async def _read(self, first: dict[str, Any]) -> None:
        assert self._ws is not None
        failure: Exception | None = None
        try:
            await self._handle(first)
            async for raw in self._ws:
                if self._ended:
                    break
                message = json.loads(raw)
                if message.get("type") == "messages":
                    message = await self._coalesce(message)
                    if self._ended:
                        break
                await self._handle(message)
        except SocketClosed:
            pass
        except Exception as exc:  # reported to the supervisor, which decides (LeaseLost ends the session's run)
            failure = exc
            await self._abort()
        failure = failure or self._failure  # the receipts' commit failed (and closed the socket)
        if not self._ended and not self._closing:
            reason = f"engine failure: {failure}" if failure else self._close_reason()
            await self._end(Disconnected(reason, retryable=True, error=failure))

    async def _coalesce(self, message: dict[str, Any]) -> dict[str, Any]:
        """Join the message frames that are already here into one batch (one commit, one acknowledgement) and
        return it, or the first other frame after handling the batch before it. A gateway that keeps up handles
        each frame alone; one that falls behind finds frames waiting and handles them in ever larger batches."""
        assert self._ws is not None
        items: list[dict[str, Any]] = message["items"]
        while len(items) < MAX_BATCH and (raw := self._ws.recv_nowait()) is not None:
            following: dict[str, Any] = json.loads(raw)
            if following.get("type") != "messages":
                await self._handle(message)
                return following
            items.extend(following["items"])
        return message

    def _close_reason(self) -> str:
        if self._ws is not None and self._ws.close_code is not None:
            return f"connection closed ({self._ws.close_code} {self._ws.close_reason or ''})".strip()
        return "connection lost"

    async def _end(self, event: EngineEvent) -> None:
        self._ended = True
        await self._ctx.emit(event)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "messages":
            await self._on_messages(message["items"])
        elif kind == "qr":
            await self._ctx.emit(QrCode(str(message["code"]), self._ctx.clock() + float(message["ttl"])))
        elif kind == "paired":
            await self._on_paired(message)
        elif kind == "connected":
            self._registering = False
            await self._ctx.emit(Connected(_me(message["me"])))
        elif kind in ("pairing_code", "error") and "pairing_code" in self._waiting:
            self._waiting["pairing_code"].set_result(message)
        elif (
            kind in ("sent", "send_error", "sent_known")
            and (future := self._waiting.get(f"ref:{message.get('ref')}")) is not None
        ):
            future.set_result(message)
        elif kind == "receipts":
            await self._on_receipts(message["items"])
        elif kind == "contact_reset":
            self._on_contact_reset(str(message["contact"]))
        elif kind == "contacts":
            contacts = tuple(Contact(str(c["id"]), c.get("name"), None, self._ctx.clock()) for c in message["items"])
            await self._ctx.emit(ContactsUpdated(contacts))
        elif kind == "groups":
            groups = tuple(
                Group(str(g["id"]), g.get("subject"), [str(p) for p in g.get("participants", [])], self._ctx.clock())
                for g in message["items"]
            )
            await self._ctx.emit(GroupsUpdated(groups))
        elif kind == "replaced":
            await self._end(Replaced())
        elif kind == "logged_out":
            await self._end(LoggedOut(str(message.get("reason", "logged_out"))))
        elif kind == "banned":
            await self._end(TemporarilyBanned(message.get("until")))
        elif kind == "qr_timeout":
            await self._end(Disconnected("qr_timeout", retryable=False))
        else:
            self._ctx.log.debug("ignored simulator frame %r", kind)

    async def _on_receipts(self, items: list[dict[str, Any]]) -> None:
        """Receipts for sent messages: committed, then acknowledged (the server keeps them until then).

        By a task of their own, not the reader: the server sends a delivery receipt right after each ``sent``
        answer, and a reader that waited for each receipt's commit would hold the next answer back behind it (a
        sender's messages go one at a time). The receipts that come while one batch commits go in the next."""
        self._receipts.extend(items)
        if self._receipting is None or self._receipting.done():
            self._receipting = asyncio.create_task(self._commit_receipts(), name=f"sim-receipts-{self._ctx.session_id}")

    async def _commit_receipts(self) -> None:
        try:
            while self._receipts and not self._ended:
                items, self._receipts = self._receipts, []
                acks = [MessageAck(str(r["id"]), str(r["status"]), float(r["ts"])) for r in items]
                await self._ctx.emit_many(acks)
                assert self._ws is not None
                await self._ws.send(frame("receipt_ack", keys=[f"{r['id']}:{r['status']}" for r in items]))
        except SocketClosed:
            pass  # what was not acknowledged comes again at the next login
        except Exception as exc:  # as if the reader had failed: the connection ends, the supervisor decides
            self._failure = exc
            await self._abort()

    async def _on_paired(self, message: dict[str, Any]) -> None:
        device = message["device"]
        me = _me(message["me"])
        record = json.dumps({"id": device["id"], "secret": device["secret"], "me": me.as_dict()}).encode()
        await self._ctx.auth.put_many({CREDS: record})  # committed before the phone is told we are linked
        self._secret = bytes.fromhex(device["secret"])
        self._chains.clear()
        await self._ctx.emit(Paired(me))
        assert self._ws is not None
        await self._ws.send(frame("paired_ack"))

    def alive(self) -> bool:
        return self._reader is not None and not self._reader.done()


def _wire(content: Content) -> dict[str, Any]:
    """A message's content as the simulator's ``send`` frame carries it (a media file described, not its bytes)."""
    if isinstance(content, Text):
        return {"text": content.text}
    if isinstance(content, Media):
        media = {
            "mimetype": content.mimetype,
            "filename": content.filename,
            "size": len(content.data),
            "sha256": hashlib.sha256(content.data).hexdigest(),
            "kind": content.kind.value,
            "voice": content.kind is MessageKind.VOICE,
            "note": content.as_note,
        }
        return {"text": content.caption, "media": media}
    if isinstance(content, Location):
        return {"location": {"latitude": content.latitude, "longitude": content.longitude, "name": content.name}}
    if isinstance(content, Contacts):
        return {"contacts": [{"name": card.name, "vcard": card.vcard} for card in content.cards]}
    if isinstance(content, Poll):
        return {"poll": {"name": content.name, "options": list(content.options), "multiple": content.multiple}}
    return {
        "reaction": {
            "id": content.message_id,
            "emoji": content.emoji,
            "fromMe": content.from_me,
            "participant": content.participant,
        }
    }

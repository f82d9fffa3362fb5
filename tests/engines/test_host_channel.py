"""What crosses between the gateway and an engine host, and how: the codec's allowlist and the channel's requests
both ways (answers, errors, cancellation, the other side's end), over a real socket pair."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import pytest

from wagate.domain.content import ContactCard, Contacts, Location, Media, Poll, Reaction, Text
from wagate.domain.messages import Contact, Group, MessageKind
from wagate.engines.base import (
    Connected,
    Connection,
    ContactStateDamaged,
    ContactsUpdated,
    DecryptFailed,
    DeviceStateDamaged,
    Disconnected,
    Engine,
    EngineConnectError,
    EngineContext,
    EngineNotice,
    EngineUnavailable,
    GroupsUpdated,
    LoggedOut,
    Me,
    MessageAck,
    MessageReceived,
    OutgoingMessage,
    Paired,
    PairingCode,
    QrCode,
    Reconnecting,
    Replaced,
    SendRejected,
    SentMessage,
    TemporarilyBanned,
)
from wagate.engines.host import codec
from wagate.engines.host.channel import Channel, ChannelClosed
from wagate.engines.host.child import HostServer
from wagate.errors import CryptoError, DamagedRecord, LeaseLost, StorageFull, StoreUnavailable

ME = Me("15550001@s.whatsapp.net", "+15550001", "Shop")
MEDIA = os.urandom(16 * 1024 * 1024)  # the largest media a message may carry by default


def test_every_record_of_the_engine_contract_crosses_as_itself() -> None:
    values: list[Any] = [
        QrCode("2@abc", 1700000000.5),
        PairingCode("ABCD-EFGH"),
        Paired(ME),
        Connected(ME),
        Disconnected("connection lost"),
        Disconnected("lease lost", retryable=False, error=LeaseLost("session ses_1: status write refused")),
        Reconnecting("dropped"),
        LoggedOut("logged_out"),
        Replaced(),
        TemporarilyBanned(None),
        TemporarilyBanned(1700000100.0),
        DecryptFailed("15550002@s.whatsapp.net", "3EB0AA"),
        MessageReceived(
            "3EB0AB",
            "15550002@s.whatsapp.net",
            "15550002@s.whatsapp.net",
            "hi",
            1700000000.25,
            extra={"quoted": {"id": "3EB0AA"}, "mentions": ["15550003@s.whatsapp.net"]},
            push_name="Ann",
            media={"mimetype": "image/png", "size": 3},
        ),
        MessageAck("3EB0AC", "read", None),
        ContactsUpdated((Contact("15550002@s.whatsapp.net", "Ann", None, 1.0), Contact("x@lid", None, "X", 2.0))),
        GroupsUpdated((Group("1203@g.us", "Team", ["15550002@s.whatsapp.net"], 3.0),)),
        EngineNotice("call.received", {"id": "c1", "from": "15550002@s.whatsapp.net", "timestamp": 1.5}),
        OutgoingMessage("3EB0AD", "15550002@s.whatsapp.net", Media(MessageKind.IMAGE, MEDIA, "image/jpeg", None, "hi")),
        OutgoingMessage("3EB0AE", "1203@g.us", Media(MessageKind.VIDEO, MEDIA, "video/mp4", "v.mp4", as_note=True)),
        OutgoingMessage("3EB0AF", "1203@g.us", Location(52.52, 13.405, "Office", None), reply_to="3EB0AA"),
        OutgoingMessage("3EB0B0", "1203@g.us", Contacts((ContactCard("Ann", "BEGIN:VCARD"), ContactCard("B", "")))),
        OutgoingMessage("3EB0B1", "1203@g.us", Poll("Lunch?", ("yes", "no"), multiple=True)),
        OutgoingMessage("3EB0B2", "1203@g.us", Text("plain")),
        OutgoingMessage("3EB0B3", "1203@g.us", Reaction("3EB0AA", "👍", from_me=False, participant="1@s.whatsapp.net")),
        SentMessage("3EB0AD", 1700000001.0),
    ]
    decoded = codec.unpack(codec.pack(values))
    assert [type(v) for v in decoded] == [type(v) for v in values]
    assert decoded[:5] + decoded[6:] == values[:5] + values[6:]
    failed = decoded[5]  # exceptions compare by identity: field by field
    assert (failed.reason, failed.retryable) == ("lease lost", False)
    assert isinstance(failed.error, LeaseLost)  # the supervisor ends a session's run on exactly this class
    assert str(failed.error) == "session ses_1: status write refused"
    assert isinstance(decoded[14].contacts, tuple)  # frozen records keep their tuples


def test_errors_keep_their_class_and_others_arrive_named() -> None:
    errors: list[Exception] = [
        EngineConnectError("network unreachable: no route", retryable=False),
        EngineUnavailable("not connected"),
        SendRejected("not on WhatsApp"),
        LeaseLost("stale epoch"),
        StoreUnavailable("database down"),
        CryptoError("tampered"),
        ZeroDivisionError("division by zero"),
    ]
    decoded = codec.unpack(codec.pack(errors))
    assert [type(e) for e in decoded[:-1]] == [type(e) for e in errors[:-1]]
    assert [str(e) for e in decoded[:-1]] == [str(e) for e in errors[:-1]]
    assert decoded[0].reason == "network unreachable: no route"
    assert decoded[0].retryable is False
    assert isinstance(decoded[-1], codec.RemoteError)
    assert str(decoded[-1]) == "ZeroDivisionError: division by zero"


def test_damaged_state_crosses_with_what_the_engine_needs_of_it() -> None:
    """A vault read that found damaged records raises in the gateway and must reach the hosted engine as itself,
    with the records that did open; the events that report damage keep their (namespace, key) pairs."""
    damaged = DamagedRecord([("chain", "+15550002")], {"+15550003": b"\x00state"})
    values: list[Any] = [
        damaged,
        StorageFull("the disk is full"),
        DeviceStateDamaged((("creds", "device"), ("creds", "identity"))),
        ContactStateDamaged("15550002@s.whatsapp.net"),
    ]
    error, full, device, contact = codec.unpack(codec.pack(values))
    assert isinstance(error, DamagedRecord)
    assert (error.records, error.readable) == (damaged.records, damaged.readable)
    assert type(full) is StorageFull
    assert str(full) == "the disk is full"
    assert device == values[2]
    assert device.records[0] == ("creds", "device")
    assert contact == values[3]


def test_only_the_allowlisted_records_are_built() -> None:
    """What a host writes is data: a record of any other name is refused, not built (pickle would build anything)."""
    forged = msgpack.packb(msgpack.ExtType(1, msgpack.packb(["Path", ["/etc/passwd"]])))
    with pytest.raises(KeyError):
        codec.unpack(forged)
    short = msgpack.packb(msgpack.ExtType(1, msgpack.packb(["QrCode", ["2@abc"]])))
    with pytest.raises(ValueError, match="a QrCode with 1 fields"):
        codec.unpack(short)
    with pytest.raises(TypeError, match="cannot carry a object"):
        codec.pack([object()])


# -- the channel ---------------------------------------------------------------------------------------------------


class End:
    """One end of a channel, with the handler it serves requests with and what it saw."""

    def __init__(self, name: str) -> None:
        self.handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.notes: list[tuple[str, int, list[Any]]] = []
        self.lost: list[Exception | None] = []
        self.channel = Channel(name, self.handle, self.note, self.lost.append)

    async def handle(self, op: str, conn: int, args: list[Any]) -> Any:
        return await self.handlers[op](conn, *args)

    def note(self, op: str, conn: int, args: list[Any]) -> None:
        self.notes.append((op, conn, args))


@pytest.fixture
async def ends() -> AsyncIterator[tuple[End, End]]:
    loop = asyncio.get_running_loop()
    a_sock, b_sock = socket.socketpair()
    a, b = End("gateway"), End("host")
    await loop.create_unix_connection(lambda: a.channel, sock=a_sock)
    await loop.create_unix_connection(lambda: b.channel, sock=b_sock)
    yield a, b
    a.channel.close()
    b.channel.close()
    await asyncio.sleep(0)


async def test_requests_go_both_ways_and_errors_come_back_as_raised(ends: tuple[End, End]) -> None:
    gateway, host = ends

    async def send(conn: int, message: OutgoingMessage) -> SentMessage:
        if message.content == Text("refuse"):
            raise SendRejected("too large")
        size = len(message.content.data) if isinstance(message.content, Media) else 0
        return SentMessage(f"{conn}:{message.id}:{size}", 2.0)

    async def emit(conn: int, event: Any) -> None:
        assert isinstance(event, MessageReceived)
        if conn == 9:
            raise LeaseLost("stale")

    host.handlers["send"] = send
    gateway.handlers["emit"] = emit
    sent = await gateway.channel.request(
        "send", 4, OutgoingMessage("m1", "c", Media(MessageKind.FILE, MEDIA, "application/pdf"))
    )
    assert sent == SentMessage(f"4:m1:{len(MEDIA)}", 2.0)
    with pytest.raises(SendRejected, match="too large"):
        await gateway.channel.request("send", 4, OutgoingMessage("m2", "c", Text("refuse")))
    received = MessageReceived("m3", "c", "s", "t", 1.0)
    assert await host.channel.request("emit", 1, received) is None
    with pytest.raises(LeaseLost):
        await host.channel.request("emit", 9, received)
    # Many at once: each answer reaches its own request.
    requests = [gateway.channel.request("send", n, OutgoingMessage(f"x{n}", "c", Text(""))) for n in range(50)]
    answers = await asyncio.gather(*requests)
    assert [a.message_id for a in answers] == [f"{n}:x{n}:0" for n in range(50)]
    host.channel.notify("alive", 3, False)
    await asyncio.sleep(0.05)
    assert gateway.notes == [("alive", 3, [False])]


async def test_a_cancelled_request_is_cancelled_on_the_other_side_and_waited_for(ends: tuple[End, End]) -> None:
    gateway, host = ends
    entered = asyncio.Event()
    cleaned: list[float] = []

    async def connect(conn: int) -> None:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # the engine's own cleanup (closing its socket, stopping Go's client)
            cleaned.append(asyncio.get_running_loop().time())
            raise

    host.handlers["connect"] = connect
    calling = asyncio.create_task(gateway.channel.request("connect", 1))
    await entered.wait()
    calling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await calling
    assert cleaned, "the cancellation returned before the other side had finished its own"
    assert host.channel.serving() == 0

    # A timeout around the call (the runner's connect timeout) is a cancellation too.
    entered.clear()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await gateway.channel.request("connect", 2)
    assert len(cleaned) == 2


async def test_a_request_cancelled_as_it_is_made_is_answered_at_once(ends: tuple[End, End]) -> None:
    """The cancel reaches the other side with the request itself (one read): its task is cancelled before it ran at
    all, and the requester hears so at once rather than after the grace it waits for a cancellation."""
    gateway, host = ends
    ran: list[int] = []

    async def emit(conn: int, event: Any) -> None:
        ran.append(conn)

    gateway.handlers["emit"] = emit
    started = asyncio.get_running_loop().time()
    calling = asyncio.create_task(host.channel.request("emit", 1, Replaced()))
    await asyncio.sleep(0)  # the request is written
    calling.cancel()  # and the cancel right after it, before the other side has read either
    with pytest.raises(asyncio.CancelledError):
        await calling
    assert asyncio.get_running_loop().time() - started < 1.0
    assert ran == []
    assert gateway.channel.serving() == 0


async def test_the_other_sides_end_fails_what_waits_and_is_told_once(ends: tuple[End, End]) -> None:
    gateway, host = ends

    async def forever(conn: int) -> None:
        await asyncio.sleep(60)

    host.handlers["connect"] = forever
    waiting = asyncio.create_task(gateway.channel.request("connect", 1))
    await asyncio.sleep(0.05)
    host.channel.abort()  # the host's end goes, as when its process dies
    with pytest.raises(ChannelClosed):
        await waiting
    await asyncio.sleep(0.05)
    assert gateway.lost == [None]
    with pytest.raises(ChannelClosed):
        await gateway.channel.request("connect", 1)


async def test_a_broken_message_closes_the_channel() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    gateway = End("gateway")
    await loop.create_unix_connection(lambda: gateway.channel, sock=ours)
    waiting = asyncio.create_task(gateway.channel.request("connect", 1))
    await loop.sock_sendall(theirs, msgpack.packb([7, "no such kind"]))
    with pytest.raises(ChannelClosed):
        await waiting
    assert gateway.lost == [None]
    assert gateway.channel.closed
    theirs.close()


# -- the host's side, around one connection --------------------------------------------------------------------


class StubConnection(Connection):
    """A connection whose liveness the test sets (the host's side is what is tested, not an engine)."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.working = True
        self.closed = False

    async def connect(self) -> None:
        await self.ctx.emit(Connected(ME))

    async def disconnect(self) -> None:
        self.closed = True

    async def logout(self) -> None:
        self.closed = True

    async def request_pairing_code(self, phone: str) -> str:
        raise EngineUnavailable("linked")

    async def send(self, message: OutgoingMessage) -> SentMessage:
        return SentMessage(message.id, 1.0)

    def alive(self) -> bool:
        return self.working


class StubEngine(Engine):
    name = "stub"

    def __init__(self) -> None:
        self.opened: list[StubConnection] = []

    def open(self, ctx: EngineContext) -> StubConnection:
        self.opened.append(StubConnection(ctx))
        return self.opened[-1]


async def test_the_host_says_when_a_connection_stops_working_and_forgets_closed_ones() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    gateway = End("gateway")
    server = HostServer()
    server.engine = engine = StubEngine()
    server.channel = host = Channel("host", server.handle, server.on_note, lambda _: None)
    await loop.create_unix_connection(lambda: gateway.channel, sock=ours)
    await loop.create_unix_connection(lambda: host, sock=theirs)
    watching = asyncio.create_task(server.watch())
    emitted: list[Any] = []

    async def emit(conn: int, event: Any) -> None:
        emitted.append((conn, event))

    gateway.handlers["emit"] = emit
    fields = {"tenant": "ten_1", "session": "ses_1", "name": "main", "config": {}, "epoch": 3}
    await gateway.channel.request("connect", 7, fields)
    assert emitted == [(7, Connected(ME))]
    (connection,) = engine.opened
    assert (connection.ctx.session_id, connection.ctx.epoch) == ("ses_1", 3)
    assert await gateway.channel.request("send", 7, OutgoingMessage("m1", "c", Text("x"))) == SentMessage("m1", 1.0)

    connection.working = False  # its reader ended without a word: the gateway hears of it within a second
    async with asyncio.timeout(3):
        while ("alive", 7, [False]) not in gateway.notes:
            await asyncio.sleep(0.05)
    await gateway.channel.request("disconnect", 7)
    assert connection.closed
    assert (await gateway.channel.request("stats", 0))["connections"] == 0
    with pytest.raises(EngineUnavailable):
        await gateway.channel.request("send", 7, OutgoingMessage("m2", "c", Text("x")))
    watching.cancel()
    gateway.channel.close()
    host.close()


def test_every_event_of_the_engine_contract_is_on_the_allowlist() -> None:
    """A new engine event must cross to the gateway: one left off the codec's allowlist would fail only at run time,
    in the host that first reports it."""
    import dataclasses

    from wagate.domain import content
    from wagate.engines import base

    def events(cls: type[base.EngineEvent]) -> set[type[Any]]:
        # as the module names them: a slotted dataclass replaces the class it was declared as
        found = {
            sub for sub in cls.__subclasses__() if dataclasses.is_dataclass(sub) and vars(base).get(sub.__name__) is sub
        }
        return found.union(*(events(sub) for sub in cls.__subclasses__()))

    contract = events(base.EngineEvent) | {base.Me, base.OutgoingMessage, base.SentMessage}
    contract |= {content.Text, content.Media, content.Location, content.ContactCard, content.Contacts, content.Poll}
    contract |= {content.Reaction}
    assert sorted(cls.__name__ for cls in contract - set(codec._RECORDS)) == []

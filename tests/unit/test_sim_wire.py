"""The sim engine's WebSocket client, against an independent server (the ``websockets`` package) and, for what a
well-behaved server never sends, a raw TCP server speaking hand-made bytes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import uvloop
from websockets.asyncio.server import ServerConnection, serve

from wagate.engines.sim import wire
from wagate.engines.sim.wire import HandshakeError, SocketClosed, open_socket

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, for the raw server's half of the handshake
Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def _serving(handler: Handler, **options: object) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, compression=None, **options) as server:  # type: ignore[arg-type]
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_text_round_trips_of_every_length_encoding() -> None:
    async with _serving(_echo, max_size=None) as url:
        sock = await open_socket(url)
        for text in ("", "héllo", "x" * 125, "y" * 126, "z" * 70_000, "w" * 300_000):
            await sock.send(text)
            assert await sock.recv() == text
        await sock.close()
        assert sock.close_code == 1000


async def test_fragmented_messages_are_joined() -> None:
    async def fragments(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(["one ", "two ", "three"])
        await ws.send("after")
        await ws.wait_closed()

    async with _serving(fragments) as url:
        sock = await open_socket(url)
        await sock.send("go")
        assert await sock.recv() == "one two three"
        assert await sock.recv() == "after"
        await sock.close()


async def test_server_pings_are_answered_so_the_connection_lives() -> None:
    async with _serving(_echo, ping_interval=0.05, ping_timeout=0.1) as url:
        sock = await open_socket(url)
        await asyncio.sleep(0.6)  # a dozen pings, each needing our pong within 0.1 s
        await sock.send("still here")
        assert await sock.recv() == "still here"
        await sock.close()


async def test_the_server_closing_gives_its_code_and_reason() -> None:
    async def bye(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(4001, "bye")

    async with _serving(bye) as url:
        sock = await open_socket(url)
        await sock.send("hi")
        with pytest.raises(SocketClosed) as closed:
            await sock.recv()
        assert (closed.value.code, closed.value.reason) == (4001, "bye")
        assert [m async for m in sock] == []
        with pytest.raises(SocketClosed):
            await sock.send("too late")
        await asyncio.wait_for(sock.wait_closed(), 2)


async def test_our_close_reaches_the_server_with_its_code() -> None:
    seen: asyncio.Future[tuple[int | None, str | None]] = asyncio.get_running_loop().create_future()

    async def watch(ws: ServerConnection) -> None:
        await ws.wait_closed()
        seen.set_result((ws.close_code, ws.close_reason))

    async with _serving(watch) as url:
        sock = await open_socket(url)
        await sock.close(4100, "done")
        assert await asyncio.wait_for(seen, 2) == (4100, "done")
        assert sock.closed


async def test_frames_are_not_logged_even_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """The gateway may log at DEBUG; what crosses the wire (a device's secret, message bodies) never reaches a log."""
    caplog.set_level(logging.DEBUG)
    async with _serving(_echo) as url:
        sock = await open_socket(url)
        await sock.send("the device secret 0123456789abcdef")
        assert await sock.recv() == "the device secret 0123456789abcdef"
        await sock.close()
    ours = [record.getMessage() for record in caplog.records if not record.name.startswith("websockets.server")]
    assert not any("0123456789abcdef" in line for line in ours), ours


# a raw server, for what a correct server never does --------------------------------------------------------------


def _accept(request: bytes) -> bytes:
    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n") if line.lower().startswith(b"sec-"))
    return base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 - RFC 6455


@asynccontextmanager
async def _raw(script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"


def _upgraded(request: bytes, accept: bytes | None = None) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + (accept or _accept(request)) + b"\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (lambda req: b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n", "403"),
        (lambda req: _upgraded(req, accept=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "Accept"),
        (lambda req: _upgraded(req).replace(b"Upgrade: websocket", b"Upgrade: h2c"), "did not upgrade"),
        (lambda req: _upgraded(req)[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "extension"),
    ],
)
async def test_a_refused_or_wrong_upgrade_is_a_handshake_error(answer: Callable[[bytes], bytes], why: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(await reader.readuntil(b"\r\n\r\n")))
        await writer.drain()
        await reader.read()

    async with _raw(script) as url:
        with pytest.raises(HandshakeError, match=why):
            await open_socket(url)


async def test_a_server_that_closes_during_the_handshake() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with _raw(script) as url:
        with pytest.raises(HandshakeError):
            await open_socket(url)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x82abcd" + b"xx", 1002),  # masked by the server
        (b"\xc1\x02hi", 1002),  # a reserved bit
        (b"\x80\x02hi", 1002),  # a continuation of nothing
        (b"\x82\x02hi", 1003),  # binary
        (b"\x81\x02\xff\xfe", 1007),  # not UTF-8
        (b"\x81\x7f" + struct.pack("!Q", 1 << 40), 1009),  # too big
        (b"\x09\x02hi", 1002),  # a fragmented ping
    ],
)
async def test_protocol_violations_close_with_the_right_code(frame: bytes, code: int) -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_upgraded(await reader.readuntil(b"\r\n\r\n")) + frame)
        await writer.drain()
        got.set_result(await reader.read())

    async with _raw(script) as url:
        sock = await open_socket(url)
        with pytest.raises(SocketClosed) as closed:
            await sock.recv()
        assert closed.value.code == code
        sent = await asyncio.wait_for(got, 2)  # the client's close frame, masked: opcode 8, then the code
        assert sent[0] == 0x88
        key, body = sent[2:6], sent[6:]
        assert struct.unpack("!H", bytes(b ^ key[i % 4] for i, b in enumerate(body[:2])))[0] == code


async def test_a_silent_server_is_dropped_after_the_ping_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "PING_INTERVAL", 0.05)
    monkeypatch.setattr(wire, "PING_TIMEOUT", 0.1)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_upgraded(await reader.readuntil(b"\r\n\r\n")))
        await writer.drain()
        await reader.read()  # reads the pings, never answers

    async with _raw(script) as url:
        sock = await open_socket(url)
        with pytest.raises(SocketClosed) as closed:
            await asyncio.wait_for(sock.recv(), 2)
        assert closed.value.code == 1011


async def test_only_ws_urls() -> None:
    with pytest.raises(ValueError, match="ws://"):
        await open_socket("wss://127.0.0.1:1/ws")
    with pytest.raises(ConnectionRefusedError):
        await open_socket("ws://127.0.0.1:1/ws")


def test_the_same_on_uvloop() -> None:
    """The gateway runs on uvloop (uvicorn picks it), whose transports are not asyncio's classes."""
    for scenario in (
        test_text_round_trips_of_every_length_encoding,
        test_fragmented_messages_are_joined,
        test_the_server_closing_gives_its_code_and_reason,
        test_our_close_reaches_the_server_with_its_code,
        test_a_server_that_closes_during_the_handshake,
    ):
        uvloop.run(scenario())
    uvloop.run(test_protocol_violations_close_with_the_right_code(b"\x81\x82abcdxx", 1002))

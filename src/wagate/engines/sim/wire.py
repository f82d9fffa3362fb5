"""A lean WebSocket client (RFC 6455) for the sim engine's link to the simulator.

Thousands of sessions open their sockets at once after a restart, and the general-purpose client spent more CPU on
its handshake (header objects, a sans-I/O state machine per connection) than the rest of a session's start. This
one is an ``asyncio.Protocol``: the handshake is one pre-built request and one response check, frames are parsed from
a byte buffer. It speaks what the simulator needs and nothing more: text frames (fragmented or not), ping/pong both
ways, the close handshake; no extensions, no subprotocols, no proxies, ``ws://`` only.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import os
import struct
from typing import cast
from urllib.parse import urlsplit

from wagate.crypto.entropy import public_random

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEADERS = 16 * 1024
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0


class HandshakeError(Exception):
    """The server did not accept the WebSocket upgrade."""


class SocketClosed(Exception):
    """The connection is closed (``code`` and ``reason`` as the close handshake gave them, 1006 when it was lost)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


def _mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    key = public_random(4)  # a masking key travels in the clear: no secret, and no GIL release per frame
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


def _close_payload(code: int, reason: str) -> bytes:
    return struct.pack("!H", code) + reason.encode()[:120]


class _Protocol(asyncio.Protocol):
    def __init__(self, key: bytes, max_size: int) -> None:
        self._accept = base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 - RFC 6455 mandates SHA-1
        self._max_size = max_size
        self._buffer = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_size = 0
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.messages: collections.deque[str] = collections.deque()
        self._readable: asyncio.Future[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._close_sent = False
        self.lost = asyncio.get_running_loop().create_future()
        self._writable: asyncio.Future[None] | None = None
        self._pong_due: asyncio.TimerHandle | None = None
        self._pinger: asyncio.TimerHandle | None = None

    # asyncio.Protocol ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP transport (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            if not self._upgraded and not self._handshake():
                return
            self._frames()
        except HandshakeError as exc:
            if not self.opened.done():
                self.opened.set_exception(exc)
            self._abort(1002, str(exc))
        except SocketClosed as exc:  # a protocol violation by the server
            self.fail(exc.code, exc.reason)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, "connection lost"
        if not self.opened.done():
            self.opened.set_exception(HandshakeError("the connection closed during the handshake"))
        for timer in (self._pong_due, self._pinger):
            if timer is not None:
                timer.cancel()
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # handshake -------------------------------------------------------------------------------------------------

    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEADERS:
                raise HandshakeError("the upgrade response's headers are too large")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status = head[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            raise HandshakeError(f"the server answered {head[0]!r}, not 101 Switching Protocols")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in headers.get("connection", "").lower():
            raise HandshakeError("the server did not upgrade the connection to a WebSocket")
        if headers.get("sec-websocket-accept", "").encode() != self._accept:
            raise HandshakeError("the server's Sec-WebSocket-Accept does not match the key")
        if headers.get("sec-websocket-extensions"):
            raise HandshakeError("the server chose an extension that was not offered")
        self._upgraded = True
        self._schedule_ping()
        self.opened.set_result(None)
        return True

    # frames ----------------------------------------------------------------------------------------------------

    def _frames(self) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            if second & 0x80:
                raise SocketClosed(1002, "the server masked a frame")
            if first & 0x70:
                raise SocketClosed(1002, "reserved bits set without an extension")
            n, offset = second & 0x7F, 2
            if n == 126:
                if len(buffer) < 4:
                    return
                n, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif n == 127:
                if len(buffer) < 10:
                    return
                n, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if n > self._max_size:
                raise SocketClosed(1009, "message too big")
            if len(buffer) < offset + n:
                return
            payload = bytes(buffer[offset : offset + n])
            del buffer[: offset + n]
            self._frame(first & 0x80 != 0, first & 0x0F, payload)

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            if opcode == OP_CONT and not self._fragments:
                raise SocketClosed(1002, "a continuation frame without a message to continue")
            if opcode != OP_CONT and self._fragments:
                raise SocketClosed(1002, "a new message inside a fragmented one")
            if opcode == OP_BINARY:
                raise SocketClosed(1003, "binary frames are not part of the simulator's protocol")
            self._fragment_size += len(payload)
            if self._fragment_size > self._max_size:
                raise SocketClosed(1009, "message too big")
            self._fragments.append(payload)
            if fin:
                data = b"".join(self._fragments)
                self._fragments, self._fragment_size = [], 0
                try:
                    self.messages.append(data.decode())
                except UnicodeDecodeError:
                    raise SocketClosed(1007, "invalid UTF-8 in a text frame") from None
                self._wake()
            return
        if not fin or len(payload) > 125:
            raise SocketClosed(1002, "invalid control frame")
        if opcode == OP_PING:
            self.write(OP_PONG, payload)
        elif opcode == OP_PONG:
            if self._pong_due is not None:
                self._pong_due.cancel()
                self._pong_due = None
        elif opcode == OP_CLOSE:
            code, reason = 1005, ""
            if len(payload) >= 2:
                code, reason = struct.unpack_from("!H", payload)[0], payload[2:].decode("utf-8", "replace")
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            if not self._close_sent:
                self._close_sent = True
                self.write(OP_CLOSE, payload[:2])
            assert self.transport is not None
            self.transport.close()  # the server closes TCP first, per the RFC; closing here too is harmless
            self._wake()
        else:
            raise SocketClosed(1002, f"unknown opcode {opcode}")

    # keep-alive ------------------------------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        self._pinger = asyncio.get_running_loop().call_later(PING_INTERVAL, self._ping)

    def _ping(self) -> None:
        if self.close_code is not None:
            return
        self.write(OP_PING, os.urandom(4))
        if self._pong_due is None:
            self._pong_due = asyncio.get_running_loop().call_later(
                PING_TIMEOUT, self._abort, 1011, "ping timeout", True
            )
        self._schedule_ping()

    # helpers ---------------------------------------------------------------------------------------------------

    def write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    def fail(self, code: int, reason: str) -> None:
        """Close because of a protocol error: tell the server why, then drop the connection."""
        if not self._close_sent:
            self._close_sent = True
            self.write(OP_CLOSE, _close_payload(code, reason))
        self._abort(code, reason)

    def _abort(self, code: int, reason: str, hard: bool = False) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if self.transport is not None:
            if hard:  # the peer does not answer: what is buffered for it will never leave
                self.transport.abort()
            else:
                self.transport.close()
        self._wake()

    def send_close(self, code: int, reason: str) -> bool:
        """Start the close handshake; False when it was already started (by either side)."""
        if self._close_sent:
            return False
        self._close_sent = True
        self.write(OP_CLOSE, _close_payload(code, reason))
        return True

    def _wake(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def readable(self) -> None:
        self._readable = asyncio.get_running_loop().create_future()
        await self._readable

    async def drain(self) -> None:
        if self._writable is not None and not self._writable.done():
            await self._writable


class WireSocket:
    """An open WebSocket: ``send`` text, ``recv`` text (or iterate), ``close``; a closed socket raises
    :class:`SocketClosed` with the close code."""

    def __init__(self, protocol: _Protocol) -> None:
        self._p = protocol

    @property
    def close_code(self) -> int | None:
        return self._p.close_code

    @property
    def close_reason(self) -> str:
        return self._p.close_reason

    @property
    def closed(self) -> bool:
        return self._p.lost.done()

    async def send(self, text: str) -> None:
        if self._p.close_code is not None or self._p.transport is None or self._p.transport.is_closing():
            raise SocketClosed(self._p.close_code or 1006, self._p.close_reason or "connection closed")
        self._p.write(OP_TEXT, text.encode())
        await self._p.drain()

    async def recv(self) -> str:
        while not self._p.messages:
            if self._p.close_code is not None:
                raise SocketClosed(self._p.close_code, self._p.close_reason)
            await self._p.readable()
        return self._p.messages.popleft()

    def recv_nowait(self) -> str | None:
        """A message that has already arrived, or ``None``: never waits."""
        return self._p.messages.popleft() if self._p.messages else None

    def __aiter__(self) -> WireSocket:
        return self

    async def __anext__(self) -> str:
        try:
            return await self.recv()
        except SocketClosed:
            raise StopAsyncIteration from None

    async def close(self, code: int = 1000, reason: str = "", grace: float = 2.0) -> None:
        """The close handshake, waiting up to ``grace`` seconds for the server to answer and close; then the
        connection is dropped either way. ``grace=0`` sends the close frame and drops at once (a shutdown)."""
        if self._p.send_close(code, reason) and self._p.close_code is None:
            self._p.close_code, self._p.close_reason = code, reason
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._p.lost)
        if self._p.transport is not None:
            self._p.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._p.lost)


async def open_socket(url: str, *, max_size: int = 8 * 1024 * 1024) -> WireSocket:
    """Connect to ``ws://host:port/path``; raises ``OSError`` (cannot connect), :class:`HandshakeError` or
    ``ValueError`` (not a ws:// URL). The caller bounds the time."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"not a ws:// URL: {url!r}")
    host, port = parts.hostname, parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16))
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(lambda: _Protocol(key, max_size), host, port)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    transport.write(request.encode())
    try:
        await protocol.opened
    except BaseException:
        transport.abort()
        raise
    return WireSocket(protocol)

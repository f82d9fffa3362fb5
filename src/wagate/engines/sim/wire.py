"""The sim engine's WebSocket client: the ``websockets`` library's protocol (RFC 6455) on an ``asyncio.Protocol``.

The handshake, framing, masking, the checks on what the server sends and the close handshake are the library's
sans-I/O ``ClientProtocol``; this module moves its bytes, joins fragmented messages, pings the server and offers
the engine what it needs: ``send``, ``recv``, ``recv_nowait`` (the frames already here, joined into one batch),
``close``. Text frames only, no extensions, no subprotocols, no proxies, ``ws://`` only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from typing import cast
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidUpgrade
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

__all__ = ["PING_INTERVAL", "PING_TIMEOUT", "HandshakeError", "SocketClosed", "WireSocket", "open_socket"]

PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0

# The library logs every frame at DEBUG, with its text: a device's secret in its hello, message bodies. Its protocol
# gets a logger of its own that stays at INFO whatever level the process logs at.
_PROTOCOL_LOG = logging.getLogger("wagate.sim.wire")
_PROTOCOL_LOG.setLevel(logging.INFO)


class HandshakeError(Exception):
    """The server did not accept the WebSocket upgrade."""


class SocketClosed(Exception):
    """The connection is closed (``code`` and ``reason`` as the close handshake gave them, 1006 when it was lost)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


def _refusal(exc: Exception) -> HandshakeError:
    if isinstance(exc, InvalidStatus):
        line = f"{exc.response.status_code} {exc.response.reason_phrase}"
        return HandshakeError(f"the server answered {line!r}, not 101 Switching Protocols")
    if isinstance(exc, InvalidUpgrade):
        return HandshakeError(f"the server did not upgrade the connection to a WebSocket ({exc})")
    return HandshakeError(str(exc) or type(exc).__name__)


class _Protocol(asyncio.Protocol):
    def __init__(self, ws: ClientProtocol) -> None:
        self._ws = ws
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._failed = False
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.messages: collections.deque[str] = collections.deque()
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._pong_due: asyncio.TimerHandle | None = None
        self._pinger: asyncio.TimerHandle | None = None

    # asyncio.Protocol ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP transport (uvloop's is not a subclass)
        self._ws.send_request(self._ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if self._failed:  # nothing after a violation is read
                break
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response) and not self.opened.done():
                if ws.handshake_exc is None:
                    self._pinger = asyncio.get_running_loop().call_later(PING_INTERVAL, self._ping)
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(_refusal(ws.handshake_exc))
        if ws.handshake_exc is not None and not self.opened.done():
            self.opened.set_exception(_refusal(ws.handshake_exc))
        if ws.parser_exc is not None and self.close_code is None:  # the server broke the protocol: the library
            sent = ws.close_sent  # answered with a close frame, its code the violation's
            self._closed(sent.code if sent is not None else 1006, sent.reason if sent is not None else "")
        self._flush()
        if (ws.close_rcvd is not None or ws.parser_exc is not None) and self.transport is not None:
            self.transport.close()  # the server closes TCP first, per the RFC; closing here too is harmless

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(EOFError):
            self._ws.receive_eof()
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

    # frames ----------------------------------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.CONT:
            self._fragments.append(frame.data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                try:
                    self.messages.append(data.decode())
                except UnicodeDecodeError:
                    self.fail(1007, "invalid UTF-8 in a text frame")
                    return
                self._wake()
        elif opcode is Opcode.BINARY:
            self.fail(1003, "binary frames are not part of the simulator's protocol")
        elif opcode is Opcode.PONG:
            if self._pong_due is not None:
                self._pong_due.cancel()
                self._pong_due = None
        elif opcode is Opcode.CLOSE:
            received = self._ws.close_rcvd
            if self.close_code is None and received is not None:
                self._closed(received.code, received.reason)
        # a ping: the library has queued its pong

    # keep-alive ------------------------------------------------------------------------------------------------

    def _ping(self) -> None:
        if self.close_code is not None:
            return
        self._ws.send_ping(os.urandom(4))
        self._flush()
        if self._pong_due is None:
            self._pong_due = asyncio.get_running_loop().call_later(PING_TIMEOUT, self._abort, 1011, "ping timeout")
        self._pinger = asyncio.get_running_loop().call_later(PING_INTERVAL, self._ping)

    # helpers ---------------------------------------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            else:  # the library's end of stream: the connection is done
                transport.close()
                return

    def _closed(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        self._wake()

    def write_text(self, payload: bytes) -> None:
        self._ws.send_text(payload)
        self._flush()

    def fail(self, code: int, reason: str) -> None:
        """Close because of a protocol error: tell the server why, then drop the connection."""
        self._failed = True
        if self._ws.state is State.OPEN:
            self._ws.fail(code, reason)
            self._flush()
        if self.close_code is None:
            self._closed(code, reason)
        if self.transport is not None:
            self.transport.close()

    def _abort(self, code: int, reason: str) -> None:
        """The server does not answer: what is buffered for it will never leave."""
        if self.close_code is None:
            self._closed(code, reason)
        if self.transport is not None:
            self.transport.abort()

    def send_close(self, code: int, reason: str) -> bool:
        """Start the close handshake; False when it was already started (by either side)."""
        if self._ws.state is not State.OPEN:
            return False
        self._ws.send_close(code, reason)
        self._flush()
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
        self._p.write_text(text.encode())
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
    try:
        uri = parse_uri(url)
    except InvalidHandshake as exc:  # InvalidURI
        raise ValueError(str(exc)) from None
    loop = asyncio.get_running_loop()
    protocol = ClientProtocol(uri, max_size=max_size, logger=_PROTOCOL_LOG)
    transport, wire = await loop.create_connection(lambda: _Protocol(protocol), uri.host, uri.port)
    try:
        await wire.opened
    except BaseException:
        transport.abort()
        raise
    return WireSocket(wire)

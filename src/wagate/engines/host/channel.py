"""Requests both ways over the socket between the gateway and one engine host.

Each side asks the other and is asked: the gateway asks the host to connect a session, send a message, close it; the
host asks the gateway to commit an event, read or write auth state. Every request is answered (a result or an error,
which keeps its class as :mod:`~wagate.engines.host.codec` allows), each is served in a task of its own, and a
requester that stops waiting (cancelled: a stop, a timeout) has the request cancelled on the other side too, and
waits a moment for that cancellation to finish, as an in-process call would have. Notes go one way, unanswered.

Messages are msgpack arrays: ``[REQUEST, id, op, conn, args]``, ``[RESULT, id, value]``, ``[FAILURE, id, error]``,
``[CANCEL, id]``, ``[NOTE, op, conn, args]``; ``conn`` names the session's connection (0: the host itself). When
the socket closes, every request still waiting fails with :class:`ChannelClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from wagate.engines.host import codec
from wagate.errors import WagateError

__all__ = ["CANCEL_GRACE", "Channel", "ChannelClosed", "Handler", "NoteHandler"]

log = logging.getLogger("wagate.engine.host")

REQUEST, RESULT, FAILURE, CANCEL, NOTE = range(5)
CANCEL_GRACE = 15.0  # seconds a cancelled request waits for the other side's cancellation to finish

Handler = Callable[[str, int, list[Any]], Awaitable[Any]]
NoteHandler = Callable[[str, int, list[Any]], None]


class ChannelClosed(WagateError):
    """The other side is gone (it exited, crashed or closed the channel) before it answered."""


class Channel(asyncio.Protocol):
    """One end of the socket. ``on_lost`` is called once, when it closes (the other side's end, or ours)."""

    def __init__(
        self, name: str, handler: Handler, on_note: NoteHandler, on_lost: Callable[[Exception | None], None]
    ) -> None:
        self.name = name
        self._handler = handler
        self._on_note = on_note
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._unpacker = codec.unpacker()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._serving: dict[int, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self.closed = False
        self.heard_at = time.monotonic()  # when the other side last wrote anything

    # asyncio's side --------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.heard_at = time.monotonic()
        try:
            self._unpacker.feed(data)
            for message in self._unpacker:
                self._dispatch(message)
        except Exception:  # a broken message: nothing after it can be trusted
            log.exception("%s: a broken message; closing the channel", self.name)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"{self.name} is gone"))
        self._on_lost(exc)

    # requests --------------------------------------------------------------------------------------------------

    async def request(self, op: str, conn: int, *args: Any) -> Any:
        """Ask the other side and wait for its answer; its error is raised here. Cancelled, the request is
        cancelled there too (this waits up to :data:`CANCEL_GRACE` for it to finish)."""
        if self.closed or self._transport is None:
            raise ChannelClosed(f"{self.name} is gone")
        ident = next(self._ids)
        data = codec.pack([REQUEST, ident, op, conn, list(args)])  # TypeError here: nothing was sent
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self._transport.write(data)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.done():
                self._send([CANCEL, ident])
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(future, CANCEL_GRACE)
            raise
        finally:
            self._pending.pop(ident, None)

    def notify(self, op: str, conn: int, *args: Any) -> None:
        self._send([NOTE, op, conn, list(args)])

    def serving(self) -> int:
        """Requests from the other side being served now."""
        return len(self._serving)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # what comes in ---------------------------------------------------------------------------------------------

    def _dispatch(self, message: list[Any]) -> None:
        kind = message[0]
        if kind == REQUEST:
            _, ident, op, conn, args = message
            task = asyncio.ensure_future(self._serve(int(ident), str(op), int(conn), list(args)))
            self._serving[ident] = task
            task.add_done_callback(lambda _: self._served(ident, task))
        elif kind in (RESULT, FAILURE):
            future = self._pending.get(message[1])
            if future is not None and not future.done():
                if kind == RESULT:
                    future.set_result(message[2])
                else:
                    future.set_exception(message[2])
        elif kind == CANCEL:
            serving = self._serving.get(message[1])
            if serving is not None:
                serving.cancel()
        elif kind == NOTE:
            self._on_note(str(message[1]), int(message[2]), list(message[3]))
        else:
            raise ValueError(f"unknown message kind {kind!r}")

    def _served(self, ident: int, task: asyncio.Task[None]) -> None:
        self._serving.pop(ident, None)
        if task.cancelled():  # also before it ran a step (its cancel came with the request): answer all the same
            self._send([FAILURE, ident, codec.RemoteError("cancelled")])

    async def _serve(self, ident: int, op: str, conn: int, args: list[Any]) -> None:
        try:
            value = await self._handler(op, conn, args)
        except Exception as exc:  # the requester's to handle: it gets the error as if it had made the call itself
            self._send([FAILURE, ident, exc])
        else:
            try:
                data = codec.pack([RESULT, ident, value])
            except TypeError as exc:
                self._send([FAILURE, ident, exc])
            else:
                self._write(data)

    def _send(self, message: list[Any]) -> None:
        self._write(codec.pack(message))

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

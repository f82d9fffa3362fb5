"""An engine whose connections run in engine host processes, seen from the gateway as any other engine.

:class:`HostedConnection` forwards the runner's calls to the connection in its host, and serves the host's requests
for it with the runner's own context: events are committed by the supervisor (the host's ``emit`` returns once they
are), auth state is read and written through the session's vault, fenced by its lease, in this process. When the
host dies, the calls in flight fail as they would on a lost connection (``EngineConnectError`` for a connect,
``EngineUnavailable`` otherwise), and a connected session hears a retryable ``Disconnected`` once the events the
host had handed over are committed: the runner reconnects it through its backoff, on a host that lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from wagate.engines.base import (
    Connection,
    Disconnected,
    Engine,
    EngineConnectError,
    EngineContext,
    EngineEvent,
    EngineUnavailable,
    OutgoingMessage,
    SentMessage,
)
from wagate.engines.host.channel import ChannelClosed
from wagate.engines.host.codec import RemoteError
from wagate.engines.host.pool import HostPool
from wagate.engines.host.process import EngineHost, HostStartError

__all__ = ["RECYCLED_NOTE", "HostedConnection", "HostedEngine", "LocalFiles"]

log = logging.getLogger("wagate.engine.host")

RECYCLED_NOTE = "the engine host is being recycled; reconnecting on another"


class LocalFiles(Protocol):
    """What an engine keeps of its sessions on this machine's disk, handled in the gateway's process."""

    async def forget(self, session_id: str) -> None: ...

    async def local_sessions(self) -> list[str]: ...


class HostedEngine(Engine):
    """The ``engine`` engine, its connections in a pool of hosts; what it keeps on disk handled here."""

    def __init__(
        self, engine: str, pool: HostPool, *, connect_namespace: str | None, files: LocalFiles | None = None
    ) -> None:
        self.name = engine
        self.connect_namespace = connect_namespace
        self.pool = pool
        self.files = files

    def open(self, ctx: EngineContext) -> HostedConnection:
        return HostedConnection(self, ctx)

    async def forget(self, session_id: str) -> None:
        if self.files is not None:
            await self.files.forget(session_id)

    async def local_sessions(self) -> list[str]:
        return await self.files.local_sessions() if self.files is not None else []

    async def close(self) -> None:
        await self.pool.close()


class HostedConnection(Connection):
    def __init__(self, engine: HostedEngine, ctx: EngineContext) -> None:
        self._engine = engine
        self._ctx = ctx
        self.id = engine.pool.next_id()
        self._host: EngineHost | None = None
        self._connected = False  # connect() returned
        self._alive = False  # as the host last said
        self._ended = False  # a closing event was reported
        self._closing = False  # the runner closed it: nothing more is reported
        self._moving = False
        self._released = False  # the host keeps nothing of it any more
        self._inflight: set[asyncio.Future[Any]] = set()  # the host's requests being served for it

    @property
    def tenant_id(self) -> str:
        return self._ctx.tenant_id

    @property
    def session_id(self) -> str:
        return self._ctx.session_id

    @property
    def session_name(self) -> str:
        return self._ctx.session_name

    @property
    def moving(self) -> bool:
        return self._moving

    # the runner's calls ----------------------------------------------------------------------------------------

    async def connect(self) -> None:
        try:
            self._host = await self._engine.pool.acquire(self, self.id)
        except HostStartError as exc:
            raise EngineConnectError(str(exc)) from None
        fields = {
            "tenant": self._ctx.tenant_id,
            "session": self._ctx.session_id,
            "name": self._ctx.session_name,
            "config": self._ctx.config,
            "epoch": self._ctx.epoch,
            "proxy": None if (proxy := self._ctx.proxy) is None else [proxy.server, proxy.username, proxy.password],
        }
        try:
            await self._host.request("connect", self.id, fields)
        except ChannelClosed:
            self._release()
            raise EngineConnectError(f"the engine host {await self._host.gone()}") from None
        except BaseException:
            self._release()
            raise
        self._connected = True
        self._alive = True

    async def disconnect(self) -> None:
        self._closing = True
        await self._close("disconnect")

    async def _close(self, op: str) -> None:
        if self._host is None or self._released:
            return
        try:
            with contextlib.suppress(ChannelClosed):
                await self._host.request(op, self.id)
        finally:
            self._release()

    async def logout(self) -> None:
        self._closing = True
        host = self._host
        if host is not None and not self._released:
            try:
                await host.request("logout", self.id)
                return
            except ChannelClosed:
                pass
            finally:
                self._release()
        # No host runs the session: nothing to unlink at WhatsApp from here; what the engine keeps on disk goes.
        await self._engine.forget(self._ctx.session_id)

    async def request_pairing_code(self, phone: str) -> str:
        return str(await self._call("pairing_code", phone))

    async def send(self, message: OutgoingMessage) -> SentMessage:
        sent = await self._call("send", message)
        if not isinstance(sent, SentMessage):
            raise EngineUnavailable("the engine host answered a send with something else")
        return sent

    async def confirm_sent(self, message_ids: Sequence[str]) -> dict[str, float] | None:
        found = await self._call("confirm_sent", list(message_ids))
        return None if found is None else {str(k): float(v) for k, v in found.items()}

    async def reset_contact(self, contact: str) -> None:
        await self._call("reset_contact", contact)

    def alive(self) -> bool:
        return self._alive and not self._ended and self._host is not None and self._host.live

    async def _call(self, op: str, *args: Any) -> Any:
        host = self._host
        if host is None or self._released or not self._connected:
            raise EngineUnavailable("the session is not connected")
        try:
            return await host.request(op, self.id, *args)
        except ChannelClosed:
            raise EngineUnavailable(f"the engine host {await host.gone()}") from None

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._alive = False
            if self._host is not None:
                self._engine.pool.released(self._host, self.id)

    # the host's requests ---------------------------------------------------------------------------------------

    async def handle(self, op: str, args: list[Any]) -> Any:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            return await self._handle(op, args)
        finally:
            self._inflight.discard(task)

    async def _handle(self, op: str, args: list[Any]) -> Any:
        ctx = self._ctx
        if op == "emit":
            (event,) = _events(args[:1])
            await ctx.emit(event)
            self._reported([event])
            return None
        if op == "emit_many":
            events = _events(args[0])
            await ctx.emit_many(events, {(str(ns), str(key)): bytes(value) for ns, key, value in args[1]} or None)
            self._reported(events)
            return None
        if op == "auth.get":
            return await ctx.auth.get_many(str(args[0]), [str(key) for key in args[1]])
        if op == "auth.put":
            deletes = [(str(ns), str(key)) for ns, key in args[1]]
            await ctx.auth.put_many({(str(ns), str(key)): bytes(value) for ns, key, value in args[0]}, deletes=deletes)
            return None
        if op == "auth.delete":
            await ctx.auth.delete_many(str(args[0]), [str(key) for key in args[1]])
            return None
        if op == "auth.export":
            return await ctx.auth.export()
        if op == "auth.import":
            return await ctx.auth.import_bundle(bytes(args[0]))
        raise RemoteError(f"the gateway does not know {op!r}")

    def _reported(self, events: Sequence[EngineEvent]) -> None:
        if any(event.closing for event in events):
            self._ended = True
            self._release()  # the host forgot it as the event was answered

    def set_alive(self, alive: bool) -> None:
        self._alive = alive

    def host_lost(self, why: str) -> None:
        self._alive = False
        self._released = True  # the host's pool has forgotten it
        if self._connected and not (self._ended or self._closing):
            self._engine.pool.tasks.spawn(self._report_loss(why), f"session {self._ctx.session_id} host lost")

    async def _report_loss(self, why: str) -> None:
        """Once what the host handed over is committed (its events, its state), the session's end."""
        if self._inflight:
            await asyncio.wait(list(self._inflight))
        await self._end(Disconnected(f"{why}; reconnecting", retryable=True))

    async def move(self) -> None:
        if self._moving or not self._connected or self._ended or self._closing or self._released:
            return
        self._moving = True
        await self._close("disconnect")  # gracefully: the engine keeps its state (a final snapshot)
        await self._end(Disconnected(RECYCLED_NOTE, retryable=True))

    async def _end(self, event: Disconnected) -> None:
        if self._ended or self._closing:
            return
        self._ended = True
        await self._ctx.emit(event)


def _events(values: list[Any]) -> list[EngineEvent]:
    if not all(isinstance(value, EngineEvent) for value in values):
        raise RemoteError("an engine host reported something that is no engine event")
    return list(values)

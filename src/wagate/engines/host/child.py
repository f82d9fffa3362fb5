"""The engine host's side: ``python -m wagate.engines.host --fd N --protocol P``, started by the gateway.

It runs one engine (its first request, ``init``, names it and gives its options) and the connections the gateway
opens on it, each with a context whose auth state and event sink are requests back to the gateway: the gateway
keeps the store and the keys and commits what each event implies before the ``emit`` here returns, as in its own
process. Every second it tells the gateway which connections stopped working (``Connection.alive``).

It ignores SIGINT and SIGTERM (a terminal's Ctrl-C, a service manager stopping the whole group): the gateway stops
its sessions first, then the host. It exits as soon as its socket closes: the gateway stopped it, or died (even by
SIGKILL), and no session of a dead gateway may run on. It never writes a core file: its memory holds sessions' keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from wagate.clock import system_clock
from wagate.domain.sessions import Proxy
from wagate.engines.base import (
    Connection,
    Engine,
    EngineContext,
    EngineEvent,
    EngineUnavailable,
    OutgoingMessage,
    StateChanges,
)
from wagate.engines.host.channel import Channel
from wagate.engines.host.process import PROTOCOL
from wagate.ids import SessionId, TenantId
from wagate.logs import LOG_LEVELS, LogFormat, configure_logging, session_var, tenant_var
from wagate.tasks import TaskSet

__all__ = ["ALIVE_INTERVAL", "HostServer", "RemoteAuth", "RemoteEvents", "main", "serve", "session_log", "triples"]

log = logging.getLogger("wagate.engine.host")
session_log = logging.getLogger("wagate.session")

ALIVE_INTERVAL = 1.0


class RemoteAuth:
    """A session's auth state in the gateway's vault (the ``AuthState`` of the engine contract), over the socket."""

    def __init__(self, channel: Channel, conn: int) -> None:
        self._channel = channel
        self._conn = conn

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = await self._channel.request("auth.get", self._conn, namespace, list(keys))
        return found

    async def put_many(
        self, records: Mapping[tuple[str, str], bytes], *, deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        await self._channel.request("auth.put", self._conn, triples(records), [list(d) for d in deletes])

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> None:
        await self._channel.request("auth.delete", self._conn, namespace, list(keys))

    async def export(self) -> bytes:
        bundle: bytes = await self._channel.request("auth.export", self._conn)
        return bundle

    async def import_bundle(self, bundle: bytes) -> int:
        count: int = await self._channel.request("auth.import", self._conn, bundle)
        return count


class RemoteEvents:
    """A connection's event sink: each event goes to the gateway, which answers once it has committed it."""

    def __init__(self, server: HostServer, conn: int) -> None:
        self._server = server
        self._conn = conn

    async def emit(self, event: EngineEvent) -> None:
        assert self._server.channel is not None
        await self._server.channel.request("emit", self._conn, event)
        if event.closing:
            self._server.drop(self._conn)

    async def emit_many(self, events: Sequence[EngineEvent], state: StateChanges | None = None) -> None:
        assert self._server.channel is not None
        await self._server.channel.request("emit_many", self._conn, list(events), triples(state))
        if any(event.closing for event in events):
            self._server.drop(self._conn)


def triples(records: Mapping[tuple[str, str], bytes] | None) -> list[list[Any]]:
    return [[namespace, key, value] for (namespace, key), value in (records or {}).items()]


class HostServer:
    """The engine and its connections, as the gateway drives them."""

    def __init__(self) -> None:
        self.channel: Channel | None = None
        self.engine: Engine | None = None
        self.connections: dict[int, Connection] = {}
        self._reported: dict[int, bool] = {}  # connections that connected, and whether they worked when last told
        self._sessions: dict[int, tuple[str, str]] = {}  # each connection's tenant and session, for the log
        self.tasks = TaskSet()

    async def handle(self, op: str, conn: int, args: list[Any]) -> Any:
        if op == "init":
            return self._init(str(args[0]), dict(args[1]))
        if op == "connect":
            return await self._connect(conn, dict(args[0]))
        if op == "stats":
            engine = self.engine.counters() if self.engine is not None else {}
            return {"connections": len(self.connections), "pid": os.getpid(), "engine": engine}
        if op == "stop":
            if self.engine is not None:
                await self.engine.close()
            return None
        if (ids := self._sessions.get(conn)) is not None:
            tenant_var.set(ids[0])
            session_var.set(ids[1])
        connection = self.connections.get(conn)
        if op in ("disconnect", "logout"):
            if connection is not None:
                try:
                    await (connection.disconnect() if op == "disconnect" else connection.logout())
                finally:
                    self.drop(conn, connection)
            return None
        if connection is None:
            raise EngineUnavailable("the session is not connected")
        if op == "pairing_code":
            return await connection.request_pairing_code(str(args[0]))
        if op == "send":
            if not isinstance(args[0], OutgoingMessage):
                raise EngineUnavailable("a send without a message")
            return await connection.send(args[0])
        if op == "confirm_sent":
            return await connection.confirm_sent([str(i) for i in args[0]])
        if op == "reset_contact":
            return await connection.reset_contact(str(args[0]))
        raise EngineUnavailable(f"an engine host does not know {op!r}")

    def on_note(self, op: str, conn: int, args: list[Any]) -> None:
        if op == "ping" and self.channel is not None:
            self.channel.notify("pong", 0)

    def _init(self, name: str, options: dict[str, Any]) -> None:
        from wagate.engines.registry import build_engine

        self.engine = build_engine(name, options)
        log.info("engine host %d runs the %s engine", os.getpid(), name)

    async def _connect(self, conn: int, fields: dict[str, Any]) -> None:
        assert self.engine is not None
        assert self.channel is not None
        self._sessions[conn] = (str(fields["tenant"]), str(fields["session"]))
        tenant_var.set(str(fields["tenant"]))
        session_var.set(str(fields["session"]))
        events = RemoteEvents(self, conn)
        ctx = EngineContext(
            tenant_id=TenantId(str(fields["tenant"])),
            session_id=SessionId(str(fields["session"])),
            session_name=str(fields["name"]),
            auth=RemoteAuth(self.channel, conn),
            emit=events.emit,
            emit_many=events.emit_many,
            log=logging.LoggerAdapter(session_log, {"session_name": str(fields["name"])}),
            config=dict(fields["config"]),
            epoch=int(fields["epoch"]),
            clock=system_clock,
            proxy=None if (proxy := fields.get("proxy")) is None else Proxy(*proxy),
        )
        connection = self.engine.open(ctx)
        self.connections[conn] = connection
        try:
            await connection.connect()
        except BaseException:
            self.drop(conn, connection)
            raise
        if conn in self.connections:
            self._reported[conn] = True

    def drop(self, conn: int, connection: Connection | None = None) -> None:
        """The gateway is done with the connection (closed, or it reported its end): keep nothing of it."""
        if connection is None or self.connections.get(conn) is connection:
            self.connections.pop(conn, None)
            self._reported.pop(conn, None)
            self._sessions.pop(conn, None)

    async def watch(self) -> None:
        """Tell the gateway of each connection that stops (or starts again) doing its work."""
        while True:
            await asyncio.sleep(ALIVE_INTERVAL)
            for conn, reported in list(self._reported.items()):
                connection = self.connections.get(conn)
                if connection is None:
                    continue
                alive = connection.alive()
                if alive != reported and self.channel is not None:
                    self._reported[conn] = alive
                    self.channel.notify("alive", conn, alive)


async def serve(fd: int) -> None:
    loop = asyncio.get_running_loop()
    server = HostServer()
    lost: asyncio.Future[None] = loop.create_future()

    def closed(_: Exception | None) -> None:
        if not lost.done():
            lost.set_result(None)

    channel = Channel("the gateway", server.handle, server.on_note, closed)
    server.channel = channel
    await loop.create_unix_connection(lambda: channel, sock=socket.socket(fileno=fd))
    server.tasks.spawn(server.watch(), "alive watch")
    await lost
    # The gateway is gone or stopped this host: nothing here may outlive it (a session still connected would
    # replace the one the gateway's next run starts), and the engine's native threads need not be waited for.
    log.info("engine host %d: the gateway closed the socket; exiting", os.getpid())
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="wagate's engine host (started by the gateway)")
    parser.add_argument("--fd", type=int, required=True, help="the gateway's socket")
    parser.add_argument("--protocol", type=int, choices=[PROTOCOL], required=True, help="the requests' version")
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
    parser.add_argument("--log-format", type=LogFormat, default=LogFormat.TEXT, choices=list(LogFormat))
    args = parser.parse_args(argv)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    configure_logging(args.log_level, args.log_format)
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    runner(serve(args.fd))

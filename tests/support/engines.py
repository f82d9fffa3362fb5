"""Driving an engine directly, in the supervisor's place: a recorder for what a connection reports, a session and
its vault, whatsmeow's own database; and what this process holds (descriptors, memory) to find leaks."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import socket
from typing import Any

from sqlalchemy import text

from wagate.clock import system_clock
from wagate.domain.sessions import Desired, NewSession, Quotas, Session
from wagate.engines.base import EngineConnectError, EngineContext, EngineEvent
from wagate.engines.neonize.engine import NeonizeConnection, NeonizeEngine
from wagate.gateway import Gateway
from wagate.store.sql import SqlStore
from wagate.store.vault import Vault


class Recorder:
    """The supervisor's side of an engine context: what the connection reports, in order."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self.on_event: Any = None

    async def emit(self, event: EngineEvent) -> None:
        if self.on_event is not None:
            await self.on_event(event)
        self.events.append(event)

    async def emit_many(self, events: Any, state: Any = None) -> None:
        for event in events:
            await self.emit(event)

    def context(self, session: Session, vault: Vault) -> EngineContext:
        import logging

        return EngineContext(
            tenant_id=session.tenant_id,
            session_id=session.id,
            session_name=session.name,
            auth=vault,
            emit=self.emit,
            emit_many=self.emit_many,
            log=logging.LoggerAdapter(logging.getLogger("test"), {}),
            config={},
            epoch=1,
            clock=system_clock,
        )


async def new_session(gateway: Gateway, name: str = "phone") -> Session:
    tenant = await gateway.store.tenants.create(f"t-{name}", contact_email=None, max_sessions=None)
    return await gateway.store.sessions.create(
        NewSession(tenant.id, name, "neonize", {}, Desired.RUNNING), quotas=Quotas(5, 100), actor="test"
    )


async def vault_for(gateway: Gateway, session: Session) -> Vault:
    lease = await gateway.store.leases.acquire(session.id, "w-test", ttl=600)
    assert lease is not None
    return gateway.vaults.open(session.tenant_id, session.id, owner="w-test", epoch=lease.epoch)


async def fill_pools(gateway: Gateway) -> None:
    """Open every connection the store's read pool may keep. The pool opens one whenever reads overlap, more often
    the busier the machine, and keeps it (on SQLite, two descriptors: the database and its log): filled first, it
    holds still while a test counts the descriptors and memory that something else may leak."""
    store = gateway.store
    assert isinstance(store, SqlStore)
    probe = text("SELECT count(*) FROM sqlite_master" if store.db.dialect == "sqlite" else "SELECT 1")
    async with contextlib.AsyncExitStack() as held:
        for _ in range(gateway.settings.db_pool_size):
            connection = await held.enter_async_context(store.db.read())
            await connection.execute(probe)


async def fds() -> int:
    """Open descriptors, the fewest of a few readings: a resolver thread's socket open at one instant is no leak."""
    counts = []
    for _ in range(5):
        counts.append(len(os.listdir("/proc/self/fd")))
        await asyncio.sleep(0.01)
    return min(counts)


def rss_kib() -> int:
    """Resident memory once garbage is collected and malloc has given freed pages back: what is still held."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def whatsapp_resolves() -> bool:
    try:
        socket.getaddrinfo("web.whatsapp.com", 443)
    except OSError:
        return False
    return True


async def whatsmeow_database(engine: NeonizeEngine, connection: NeonizeConnection) -> None:
    """Let neonize create its database: a start that fails to dial (offline) or shows a QR code (online)."""
    with contextlib.suppress(EngineConnectError):
        await connection.connect()
    await connection.disconnect()
    assert connection.file.exists(), "neonize did not create its database"

"""One SQL store for SQLite and PostgreSQL (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Callable

from wagate.clock import Clock, system_clock
from wagate.errors import StoreUnavailable
from wagate.store.base import Store
from wagate.store.contracts.auth import Sealer
from wagate.store.sql.auth import SqlAuthRecordStore
from wagate.store.sql.backups import SqlBackupStore
from wagate.store.sql.commit import SessionCommit
from wagate.store.sql.db import Database
from wagate.store.sql.deliveries import SqlOutboxStore
from wagate.store.sql.directory import SqlDirectoryStore
from wagate.store.sql.events import SqlEventStore
from wagate.store.sql.inbound import InboundWriter
from wagate.store.sql.leases import SqlLeaseStore
from wagate.store.sql.messages import SqlMessageStore
from wagate.store.sql.migrations import LATEST_VERSION, current_version, migrate
from wagate.store.sql.peers import SqlPeerChannel
from wagate.store.sql.sessions import SqlSessionStore
from wagate.store.sql.tenants import SqlApiKeyStore, SqlTenantStore
from wagate.store.sql.tickets import SqlTicketStore
from wagate.store.sql.webhooks import SqlWebhookStore
from wagate.store.sql.workers import SqlWorkerStore
from wagate.store.sql.writer import EventWriter, PlainSealer

__all__ = ["SqlStore", "open_sql_store"]


class SqlStore(Store):
    """The store on SQLite or PostgreSQL."""

    def __init__(self, db: Database, clock: Clock, sealer: Sealer) -> None:
        self.db = db
        self.backend = db.dialect
        writer = EventWriter(db, clock, sealer)
        self.tenants = SqlTenantStore(db, clock)
        self.api_keys = SqlApiKeyStore(db, clock)
        self.tickets = SqlTicketStore(db, clock)
        self.directory = SqlDirectoryStore(db)
        self.messages = SqlMessageStore(db, clock, writer)
        self.auth = SqlAuthRecordStore(db, clock)
        self.sessions = SqlSessionStore(
            db, clock, writer, SessionCommit(clock, self.auth, InboundWriter(clock), writer)
        )
        self.workers = SqlWorkerStore(db, clock)
        self.leases = SqlLeaseStore(db, clock)
        self.peers = SqlPeerChannel(db, writer)
        self.events = SqlEventStore(db, clock, writer)
        self.webhooks = SqlWebhookStore(db, clock, sealer)
        self.outbox = SqlOutboxStore(db, clock, sealer)
        self.backups = SqlBackupStore(db, clock)

    async def close(self) -> None:
        await self.db.dispose()

    async def ping(self) -> float:
        return await self.db.ping()

    async def write_refusal(self) -> StoreUnavailable | None:
        if self.db.refused is None:
            return None
        try:
            await self.db.probe_write()
        except StoreUnavailable as refused:
            return refused
        return None

    def set_observer(self, observe: Callable[[str, float], None] | None) -> None:
        self.db.observe = observe

    async def is_migrated(self) -> bool:
        return await current_version(self.db) >= LATEST_VERSION


async def open_sql_store(
    url: str,
    *,
    schema: str | None = None,
    pool_size: int = 10,
    clock: Clock = system_clock,
    sealer: Sealer | None = None,
) -> SqlStore:
    """Connect, apply pending migrations, and return the store."""
    db = Database.create(url, schema=schema, pool_size=pool_size)
    try:
        await migrate(db)
    except BaseException:
        await db.dispose()
        raise
    return SqlStore(db, clock, sealer or PlainSealer())

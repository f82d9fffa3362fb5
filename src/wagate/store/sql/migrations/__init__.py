"""Numbered schema migrations, applied in order at start, each in its own transaction.

Each migration is DDL text written once and never edited; ``{blob}``, ``{serial}`` and ``{double}`` become the
dialect's types. Concurrent workers starting together serialise on a lock (PostgreSQL advisory lock; SQLite's
single writer).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.migrations import (
    m0001_initial,
    m0002_status_note,
    m0003_events,
    m0004_connected_at,
    m0005_messages,
    m0006_delivery_indexes,
    m0007_workers,
    m0008_webhook_endpoints,
    m0009_webhook_blocked,
    m0010_ticket_key,
    m0011_write_probe,
    m0012_webhook_hmac,
    m0013_waha_event_names,
    m0014_message_time_index,
    m0015_key_scopes,
)

log = logging.getLogger("wagate.store")

TYPES = {
    "sqlite": {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "double": "DOUBLE PRECISION"},
    "postgresql": {"blob": "BYTEA", "serial": "BIGSERIAL PRIMARY KEY", "double": "DOUBLE PRECISION"},
}
_ADVISORY_LOCK = 0x77616761  # "waga"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS = (
    Migration(1, "initial", m0001_initial.STATEMENTS),
    Migration(2, "status_note", m0002_status_note.STATEMENTS),
    Migration(3, "events", m0003_events.STATEMENTS),
    Migration(4, "connected_at", m0004_connected_at.STATEMENTS),
    Migration(5, "messages", m0005_messages.STATEMENTS),
    Migration(6, "delivery_indexes", m0006_delivery_indexes.STATEMENTS),
    Migration(7, "workers", m0007_workers.STATEMENTS),
    Migration(8, "webhook_endpoints", m0008_webhook_endpoints.STATEMENTS),
    Migration(9, "webhook_blocked", m0009_webhook_blocked.STATEMENTS),
    Migration(10, "ticket_key", m0010_ticket_key.STATEMENTS),
    Migration(11, "write_probe", m0011_write_probe.STATEMENTS),
    Migration(12, "webhook_hmac", m0012_webhook_hmac.STATEMENTS),
    Migration(13, "waha_event_names", m0013_waha_event_names.STATEMENTS),
    Migration(14, "message_time_index", m0014_message_time_index.STATEMENTS),
    Migration(15, "key_scopes", m0015_key_scopes.STATEMENTS),
)
LATEST_VERSION = MIGRATIONS[-1].version


async def _ensure_table(conn: AsyncConnection, dialect: str) -> None:
    await conn.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS wagate_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        f"applied_at {TYPES[dialect]['double']} NOT NULL)"
    )


async def current_version(db: Database) -> int:
    async with db.read() as conn:
        exists = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, "wagate_migrations"))
        if not exists:
            return 0
        version = (
            await conn.execute(select(schema.migrations.c.version).order_by(schema.migrations.c.version.desc()))
        ).first()
        return int(version[0]) if version else 0


async def migrate(db: Database) -> int:
    """Apply every pending migration; returns the schema version reached."""
    types = TYPES[db.dialect]
    for migration in MIGRATIONS:
        async with db.write() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
            await _ensure_table(conn, db.dialect)
            done = (
                await conn.execute(
                    select(schema.migrations.c.version).where(schema.migrations.c.version == migration.version)
                )
            ).first()
            if done:
                continue
            for statement in migration.statements:
                await conn.exec_driver_sql(statement.format(**types))
            await conn.execute(
                insert(schema.migrations).values(version=migration.version, name=migration.name, applied_at=time.time())
            )
            log.info("applied migration %04d_%s", migration.version, migration.name)
    return LATEST_VERSION

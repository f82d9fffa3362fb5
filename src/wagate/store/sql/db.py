"""One database handle for SQLite and PostgreSQL.

SQLite: WAL journal, ``synchronous=FULL`` (a commit is on disk before it returns), foreign keys on, statement
journals in memory (on disk they cost a write per page touched), and two engines:
a single-connection writer whose transactions begin ``IMMEDIATE`` (so a read-then-write transaction cannot be
overtaken), and a pool of readers that never wait for it. PostgreSQL: one pooled engine, default (durable) commits,
optionally confined to one schema through ``search_path``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Delete, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wagate.errors import ConfigError, StoreUnavailable

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours (IMMEDIATE for the writer).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
            "PRAGMA temp_store=MEMORY",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Async access to the SQL database: ``read()`` and ``write()`` transactions, dialect-aware upserts."""

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine, dialect: str) -> None:
        self._writer = writer
        self._reader = reader
        self.dialect = dialect
        # SQLite has one writer at a time; queueing here avoids busy waits inside the driver.
        self._write_lock = asyncio.Lock() if dialect == "sqlite" else None
        self.observe: Callable[[str, float], None] | None = None  # (read|write, seconds): for metrics

    @classmethod
    def create(cls, url: str, *, schema: str | None = None, pool_size: int = 10) -> Database:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            writer = _sqlite_engine(url, immediate=True, pool_size=1)
            reader = _sqlite_engine(url, immediate=False, pool_size=pool_size)
            return cls(writer, reader, "sqlite")
        if parsed.get_backend_name() == "postgresql":
            connect_args: dict[str, Any] = {}
            if schema is not None:
                if not SCHEMA_NAME.fullmatch(schema):
                    raise ConfigError("a database schema name is lower-case letters, digits and '_'")
                connect_args["server_settings"] = {"search_path": schema}
            engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
            )
            return cls(engine, engine, "postgresql")
        raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        started = time.perf_counter()
        try:
            async with self._reader.connect() as conn:
                yield conn
        except (OperationalError, DBAPIError, OSError) as exc:
            if _is_connectivity(exc):
                raise StoreUnavailable("the database cannot be reached") from exc
            raise
        finally:
            if self.observe is not None:
                self.observe("read", time.perf_counter() - started)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block ends (durably) and rolls back on an exception."""
        started = time.perf_counter()
        try:
            if self._write_lock is None:
                async with self._writer.begin() as conn:
                    yield conn
            else:
                async with self._write_lock, self._writer.begin() as conn:
                    yield conn
        except (OperationalError, DBAPIError, OSError) as exc:
            if _is_connectivity(exc):
                raise StoreUnavailable("the database cannot be reached") from exc
            raise
        finally:
            if self.observe is not None:
                self.observe("write", time.perf_counter() - started)

    async def delete_in_chunks(self, statement: Delete, chunk: int) -> int:
        """Run ``statement`` (a delete of at most ``chunk`` rows) one transaction at a time until one deletes fewer:
        other writers wait for one chunk, never for all of them. How many rows went in all."""
        removed = 0
        while True:
            async with self.write() as conn:
                count = int((await conn.execute(statement)).rowcount or 0)
            removed += count
            if count < chunk:
                return removed
            await asyncio.sleep(0)  # what else waits to write goes between two chunks

    def upsert(
        self, table: Table, keys: Sequence[str], update: Sequence[str], extra: dict[str, Any] | None = None
    ) -> Any:
        """INSERT ... ON CONFLICT (keys) DO UPDATE SET each ``update`` column to its new value, plus ``extra``; to
        execute with a list of rows (one statement, compiled once and cached, whatever the number of rows)."""
        insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        stmt = insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={**{col: stmt.excluded[col] for col in update}, **(extra or {})}
        )

    async def ping(self) -> float:
        start = time.perf_counter()
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the database does not answer") from exc
        return time.perf_counter() - start

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


def _is_connectivity(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("connection refused", "could not connect", "connection was closed", "unable to open")
    )

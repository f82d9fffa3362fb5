"""One database handle for SQLite and PostgreSQL.

SQLite: WAL journal, ``synchronous=FULL`` (a commit is on disk before it returns), foreign keys on, statement
journals in memory (on disk they cost a write per page touched), and two sides:

- one writer connection whose transactions begin ``IMMEDIATE`` (so a read-then-write transaction cannot be
  overtaken). Its statements and its commit run on the event loop's own thread: SQLite answers an insert of a few
  rows in microseconds and a commit is a WAL append and one fsync, where a hop to a driver thread and back cost
  about 0.3 ms per statement (more once the loop was busy: the driver thread then waited for the GIL), so that a
  ten-statement transaction took 4 ms. What could block the loop runs elsewhere: checkpoints (copying the WAL into
  the database file) on a thread and connection of their own, and a ``BEGIN`` that finds the database locked by
  another process is tried again after an asynchronous pause rather than in SQLite's busy handler. Long jobs
  (retention) write in chunks;
- a pool of readers (``aiosqlite``, each on its thread) that never wait for the writer.

PostgreSQL: one pooled engine, default (durable) commits, optionally confined to one schema through ``search_path``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, CursorResult, Engine, Executable, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wagate.errors import ConfigError, StoreUnavailable

log = logging.getLogger("wagate.store")
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


BUSY_TIMEOUT = 30.0  # seconds a transaction waits for a database another process holds locked


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    # Take transaction control from the driver so that BEGIN is ours (IMMEDIATE for the writer).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={busy_timeout_ms}",
        "PRAGMA temp_store=MEMORY",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_readers(url: str, *, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, connect_args={"timeout": BUSY_TIMEOUT})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, int(BUSY_TIMEOUT * 1000))

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


class Conn(Protocol):
    """What the stores use of a connection: an ``AsyncConnection``, or the SQLite writer's :class:`InlineConnection`."""

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]: ...

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> CursorResult[Any]: ...


class InlineConnection:
    """The SQLite writer inside a transaction: each statement runs at once, on the calling thread."""

    __slots__ = ("_sync",)

    def __init__(self, sync: Connection) -> None:
        self._sync = sync

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self._sync.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> CursorResult[Any]:
        return self._sync.exec_driver_sql(statement, parameters)


class _Checkpointer:
    """Checkpoints the WAL into the database file from a thread and a connection of its own, every ``interval``
    seconds: copying pages and syncing the file is never part of a commit (the writer turns its automatic
    checkpoints off). ``PASSIVE``: it neither waits for nor blocks readers and the writer."""

    def __init__(self, path: str, interval: float) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wagate-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            while not self._stop.wait(self._interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # tried again next round; the WAL only grows meanwhile
                    log.warning("WAL checkpoint failed: %s", exc)
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _SqliteWriter:
    """The one writer connection: its transactions run on the event loop's thread, begun without blocking it."""

    def __init__(self, url: str, checkpoint_interval: float = 1.0) -> None:
        parsed = make_url(url).set(drivername="sqlite+pysqlite")
        self._path = parsed.database if parsed.database and parsed.database != ":memory:" else None
        self._checkpoint_interval = checkpoint_interval
        self._checkpointer: _Checkpointer | None = None
        # No busy handler: a database another process holds locked is waited for in ``_begin``, asynchronously.
        self.engine: Engine = create_engine(
            parsed, pool_size=1, max_overflow=0, connect_args={"timeout": 0, "check_same_thread": False}
        )
        event.listen(self.engine, "connect", self._on_connect)
        self.lock = asyncio.Lock()

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, 0)
        if self._path is not None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0").close()  # the checkpointer's job
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self._path, self._checkpoint_interval)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[InlineConnection]:
        async with self.lock:
            sync = self.engine.connect()
            try:
                await self._begin(sync)
                try:
                    yield InlineConnection(sync)
                except BaseException:
                    sync.rollback()
                    raise
                sync.commit()  # a WAL append and one fsync; checkpoints are elsewhere
            finally:
                sync.close()

    @staticmethod
    async def _begin(sync: Connection) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.001
        while True:
            try:
                sync.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                sync.rollback()
                if "locked" not in str(exc).lower() or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None


class Database:
    """Async access to the SQL database: ``read()`` and ``write()`` transactions, dialect-aware upserts."""

    def __init__(self, writer: AsyncEngine | _SqliteWriter, reader: AsyncEngine, dialect: str) -> None:
        self._writer = writer
        self._reader = reader
        self.dialect = dialect
        self.observe: Callable[[str, float], None] | None = None  # (read|write, seconds): for metrics

    @classmethod
    def create(cls, url: str, *, schema: str | None = None, pool_size: int = 10) -> Database:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            return cls(_SqliteWriter(url), _sqlite_readers(url, pool_size=pool_size), "sqlite")
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
    async def write(self) -> AsyncIterator[Conn]:
        """A transaction that commits when the block ends (durably) and rolls back on an exception."""
        started = time.perf_counter()
        try:
            if isinstance(self._writer, _SqliteWriter):
                async with self._writer.transaction() as inline:
                    yield inline
            else:
                async with self._writer.begin() as conn:
                    yield conn
        except (OperationalError, DBAPIError, OSError) as exc:
            if _is_connectivity(exc):
                raise StoreUnavailable("the database cannot be reached") from exc
            raise
        finally:
            if self.observe is not None:
                self.observe("write", time.perf_counter() - started)

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
        if isinstance(self._writer, _SqliteWriter):
            self._writer.dispose()
        else:
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

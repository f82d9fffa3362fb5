"""One database handle for SQLite and PostgreSQL.

SQLite: WAL journal, ``synchronous=FULL`` (a commit is on disk before it returns), foreign keys on, statement
journals in memory (on disk they cost a write per page touched), and three engines:
a single-connection writer whose transactions begin ``IMMEDIATE`` (so a read-then-write transaction cannot be
overtaken), a pool of readers that never wait for it, and for the hot write paths (:meth:`Database.run_write`) a
second single-connection writer driven synchronously on a thread of its own. The two writers take turns under one
lock, so SQLite never sees them compete. The hot read paths (:meth:`Database.run_read`) likewise run whole on reader
threads of their own, through the standard library's driver. PostgreSQL: one pooled engine, default (durable)
commits, optionally confined to one schema through ``search_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import Connection, Delete, Engine, Table, create_engine, delete, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wagate.errors import ConfigError, StoreUnavailable
from wagate.store.sql import schema
from wagate.store.sql.refusals import refusal

__all__ = ["PROBE_BYTES", "READER_THREADS", "SCHEMA_NAME", "Database", "probe_row"]

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
READER_THREADS = 4  # SQLite: the threads of run_read, each with a connection of its own
PROBE_BYTES = 64 * 1024  # what a write probe adds (and removes): room for a batch of messages, not for one row only
_T = TypeVar("_T")

# Inside a read() or write() block on SQLite: the cancellations its statements held back (see _FinishingConnection).
_held: ContextVar[list[None] | None] = ContextVar("wagate_sqlite_held", default=None)


class _FinishingConnection(aiosqlite.Connection):
    """aiosqlite, with every call run to its end when the task awaiting it is cancelled meanwhile: inside a
    :meth:`Database.read` or :meth:`Database.write` block the call's result is returned and the cancellation comes
    when the block is over (anywhere else it comes once the call is done).

    Cut off inside a statement, a connection is one SQLAlchemy takes to be in an unknown state, and it closes it;
    Python's sqlite3 (3.11 on) closes a connection whose statements are still referenced as a "zombie" that keeps
    its transaction, and with it SQLite's write lock, until the garbage collector frees those statements. Every
    later write then waited 30 s for the lock and failed (tests/contract/test_sqlite_writer.py)."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        future = asyncio.get_running_loop().create_future()
        self._tx.put_nowait((future, partial(fn, *args, **kwargs)))
        held = _held.get()
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if held is None or task is None:
                    await asyncio.wait([future])
                    raise
                task.uncancel()  # delivered again when the block ends
                held.append(None)


@asynccontextmanager
async def _finishing() -> AsyncIterator[None]:
    """A block whose statements on SQLite finish whatever happens: a cancellation meanwhile comes at its end (the
    outermost such block's, when they nest)."""
    if _held.get() is not None:
        yield
        return
    held: list[None] = []
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
        task = asyncio.current_task()
        if held and task is not None:
            task.cancel()  # the cancellation held back, for the next await: the one below, or the caller's
    if held:
        await asyncio.sleep(0)


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    args, params = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))  # as SQLAlchemy would connect
    params["timeout"] = 30

    async def connect() -> aiosqlite.Connection:
        made = _FinishingConnection(partial(sqlite3.connect, *args, **params), 64)
        made._thread.daemon = True  # as SQLAlchemy sets it for the connections it makes itself
        return await made

    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, async_creator=connect)
    _sqlite_setup(engine.sync_engine, immediate=immediate)
    return engine


def _sqlite_sync_engine(url: str, *, immediate: bool, pool_size: int) -> Engine:
    """The standard library's driver, for the hot paths: one connection (the writer's, used from one thread) or a
    pool of them (the readers', one per reader thread in use)."""
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(
        sync_url, pool_size=pool_size, max_overflow=0, connect_args={"timeout": 30, "check_same_thread": False}
    )
    _sqlite_setup(engine, immediate=immediate)
    return engine


def _sqlite_setup(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
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

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def probe_row() -> dict[str, Any]:
    """A row of the write probe: an id of its own, ``PROBE_BYTES`` of incompressible filler."""
    return {"id": secrets.token_hex(8), "filler": os.urandom(PROBE_BYTES)}


class Database:
    """Async access to the SQL database: ``read()`` and ``write()`` transactions, dialect-aware upserts."""

    def __init__(
        self,
        writer: AsyncEngine,
        reader: AsyncEngine,
        dialect: str,
        *,
        sync_writer: Engine | None = None,
        sync_reader: Engine | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._sync_writer = sync_writer
        self._sync_reader = sync_reader
        self._readers = ThreadPoolExecutor(READER_THREADS, "wagate-sqlite-reader") if sync_reader is not None else None
        self._hot_reader: AsyncEngine | None = None  # PostgreSQL: run_read's engine
        self.dialect = dialect
        # SQLite has one writer at a time; queueing here avoids busy waits inside the driver.
        self._write_lock = asyncio.Lock() if dialect == "sqlite" else None
        self._thread = ThreadPoolExecutor(1, "wagate-sqlite-writer") if sync_writer is not None else None
        self._sync_conn: Connection | None = None  # the sync writer's, used on its thread only
        self.observe: Callable[[str, float], None] | None = None  # (read|write, seconds): for metrics
        # Why a write was refused, until a probe (``probe_write``) goes through: not until any write does, as a small
        # one may find room that a batch of messages does not.
        self.refused: StoreUnavailable | None = None
        self.schema: str | None = None  # PostgreSQL: the schema the connections are confined to, if any

    @classmethod
    def create(cls, url: str, *, schema: str | None = None, pool_size: int = 10) -> Database:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            on_disk = bool(parsed.database) and parsed.database != ":memory:"
            if on_disk:
                Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            writer = _sqlite_engine(url, immediate=True, pool_size=1)
            reader = _sqlite_engine(url, immediate=False, pool_size=pool_size)
            if not on_disk:  # a database in memory is private to its connection: another one would not see it
                return cls(writer, reader, "sqlite")
            return cls(
                writer,
                reader,
                "sqlite",
                sync_writer=_sqlite_sync_engine(url, immediate=True, pool_size=1),
                sync_reader=_sqlite_sync_engine(url, immediate=False, pool_size=READER_THREADS),
            )
        if parsed.get_backend_name() == "postgresql":
            connect_args: dict[str, Any] = {}
            if schema is not None:
                if not SCHEMA_NAME.fullmatch(schema):
                    raise ConfigError("a database schema name is lower-case letters, digits and '_'")
                connect_args["server_settings"] = {"search_path": schema}
            engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
            )
            made = cls(engine, engine, "postgresql")
            # run_read's: no transaction around a read (each statement is one), and no ping before each use (a
            # connection found lost is replaced and the read run again). No overflow: a connection beyond the pool
            # would be opened for one read and closed after it, its statements prepared again on the next.
            made._hot_reader = create_async_engine(
                url, pool_size=pool_size, max_overflow=0, isolation_level="AUTOCOMMIT", connect_args=connect_args
            )
            made.schema = schema
            return made
        raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}")

    @contextmanager
    def _observed(self, operation: str) -> Iterator[None]:
        """Around every transaction: a database that refuses service (unreachable, read-only, full) raises
        StoreUnavailable, a refused write is remembered in ``refused``, and the time goes to the metrics."""
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:  # the driver's own errors too (the hot paths run on its cursor)
            refused = refusal(exc)
            if refused is None:
                raise
            if operation == "write":
                # A copy without the driver's error: its traceback holds the failed statement's cursor, which keeps
                # the connection from closing (its file stays open) for as long as the refusal is remembered.
                self.refused = refusal(exc)
            raise refused from exc
        finally:
            if self.observe is not None:
                self.observe(operation, time.perf_counter() - started)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        with self._observed("read"):
            if self._write_lock is None:
                async with self._reader.connect() as conn:
                    yield conn
            else:
                async with _finishing(), self._reader.connect() as conn:
                    yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block ends (durably) and rolls back on an exception."""
        with self._observed("write"):
            if self._write_lock is None:
                async with self._writer.begin() as conn:
                    yield conn
            else:
                async with _finishing(), self._write_lock, self._writer.begin() as conn:
                    yield conn

    async def run_write(self, work: Callable[[Connection], _T]) -> _T:
        """One write transaction given as a synchronous function of a connection (SQLAlchemy Core, as anywhere
        else); it commits when ``work`` returns and rolls back when it raises.

        For the hot paths. On SQLite the whole transaction runs on the sync writer's thread, so the event loop waits
        for it once, not once per statement (through aiosqlite every statement is a hop to the driver's thread and
        back, each waiting for a turn of a busy loop while the one writer is held), and SQLite's own work stays off
        the loop. On PostgreSQL it runs through the async driver. ``work`` must touch nothing the loop owns.
        """
        with self._observed("write"):
            if self._write_lock is None:
                async with self._writer.begin() as conn:
                    return await conn.run_sync(work)
            if self._thread is None:  # a database in memory: through aiosqlite
                async with _finishing(), self._write_lock, self._writer.begin() as conn:
                    return await conn.run_sync(work)
            async with self._write_lock:
                running = asyncio.get_running_loop().run_in_executor(self._thread, self._run_sync, work)
                try:
                    return await asyncio.shield(running)
                except asyncio.CancelledError:
                    # The transaction goes on in its thread: the lock stays held until it is over.
                    await asyncio.wait([running])
                    raise

    async def run_read(self, work: Callable[[Connection], _T]) -> _T:
        """A read given as a synchronous function of a connection, for the hot read paths (the API's key and session
        lookups): statements prepared once (``wagate.store.sql.prepared``), each reading a consistent snapshot of its
        own (``conn.execute`` would begin a transaction for them all). On SQLite it runs whole on a reader thread:
        the event loop waits for it once, where :meth:`read` hops to the driver's thread and back for every call
        (begin, cursor, execute, fetch, close, rollback). On PostgreSQL it runs through the async driver on
        connections of its own: no BEGIN and ROLLBACK around the read, no ping before it (a connection found lost is
        replaced and ``work`` run again, once). ``work`` must touch nothing the loop owns."""
        with self._observed("read"):
            if self._hot_reader is not None:
                return await self._read_again_once(self._hot_reader, work)
            if self._readers is None:
                async with self._reader.connect() as conn:
                    return await conn.run_sync(work)
            return await asyncio.get_running_loop().run_in_executor(self._readers, self._read_sync, work)

    @staticmethod
    async def _read_again_once(engine: AsyncEngine, work: Callable[[Connection], _T]) -> _T:
        """``work`` on a connection of ``engine``; again on a new one if the database is found unreachable on it (a
        pooled connection that the server closed meanwhile: restarted, or idle too long)."""
        for attempt in (1, 2):
            async with engine.connect() as conn:
                try:
                    return await conn.run_sync(work)
                except Exception as exc:
                    raw = (await conn.get_raw_connection()).dbapi_connection
                    lost = conn.dialect.is_disconnect(exc, raw, None) or refusal(exc) is not None  # type: ignore[arg-type]
                    if attempt == 2 or not lost:
                        raise
                    await conn.invalidate()
        raise AssertionError("unreachable")

    def _read_sync(self, work: Callable[[Connection], _T]) -> _T:
        """On a reader thread, on a connection of the readers' pool."""
        assert self._sync_reader is not None
        with self._sync_reader.connect() as conn:
            return work(conn)

    def _run_sync(self, work: Callable[[Connection], _T]) -> _T:
        """On the writer's thread: one transaction on its connection, kept open between transactions."""
        assert self._sync_writer is not None
        conn = self._sync_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._sync_conn = self._sync_writer.connect()
        with conn.begin():
            return work(conn)

    def _close_sync(self) -> None:
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None
        if self._sync_writer is not None:
            self._sync_writer.dispose()

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

    async def probe_write(self) -> None:
        """A real write that leaves nothing behind: ``PROBE_BYTES`` random bytes (which PostgreSQL's TOAST cannot
        compress to a few hundred) added to the probe table and removed in one transaction, so that the database
        needs room to grow and the disk must take the commit. Raises StoreUnavailable when refused; when it goes
        through, ``refused`` is cleared."""
        table = schema.write_probe
        row = probe_row()
        async with self.write() as conn:
            await conn.execute(insert(table).values(row))
            await conn.execute(delete(table).where(table.c.id == row["id"]))
        self.refused = None

    async def ping(self) -> float:
        start = time.perf_counter()
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the database does not answer") from exc
        return time.perf_counter() - start

    @asynccontextmanager
    async def listening(self, channel: str, callback: Callable[[str], None]) -> AsyncIterator[Callable[[], bool]]:
        """PostgreSQL: ``callback`` gets the payload of every notification on ``channel``, on a connection of its
        own, until the block ends; the block's value tells whether that connection still stands (once it is lost,
        nothing more is heard: leave the block and listen again)."""
        # Not an observed operation: it lasts as long as the process (the store's latency metrics would skew).
        async with self._writer.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None

            def heard(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
                callback(payload)

            await raw.add_listener(channel, heard)
            try:
                yield lambda: not raw.is_closed()
            finally:
                with contextlib.suppress(Exception):
                    await raw.remove_listener(channel, heard)

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._hot_reader is not None:
            await self._hot_reader.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
        if self._thread is not None:
            async with self._write_lock or asyncio.Lock():
                await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sync)
            self._thread.shutdown(wait=True)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            assert self._sync_reader is not None
            self._sync_reader.dispose()

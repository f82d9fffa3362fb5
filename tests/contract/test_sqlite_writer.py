"""SQLite's writer: a database another process holds locked is waited for without blocking the event loop, and a
failed transaction leaves nothing behind; a database that cannot be reached is told apart from a failed statement."""

from __future__ import annotations

import asyncio
import random
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from wagate.errors import StoreUnavailable
from wagate.store.sql.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.create(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    async with database.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    yield database
    await database.dispose()


async def test_a_database_locked_by_another_process_is_waited_for_without_blocking_the_loop(
    db: Database, tmp_path: Path
) -> None:
    locked, release = threading.Event(), threading.Event()

    def other_process() -> None:  # another connection, as a CLI command or a second process would hold
        connection = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t (body) VALUES ('theirs')")
        locked.set()
        release.wait(5)
        connection.execute("COMMIT")
        connection.close()

    holder = threading.Thread(target=other_process)
    holder.start()
    await asyncio.to_thread(locked.wait, 5)

    async def ours() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (body) VALUES ('ours')"))

    loop = asyncio.get_running_loop()
    started = loop.time()
    write = asyncio.ensure_future(ours())
    await asyncio.sleep(0.3)
    # The loop ran meanwhile: had the wait been SQLite's busy handler on this thread, this sleep would have ended
    # only when the other side gave up its lock (after 5 s, since it waits for this coroutine to release it).
    assert loop.time() - started < 1.0
    assert not write.done()  # waiting for the lock...
    release.set()
    await asyncio.wait_for(write, 5)
    holder.join()
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT body FROM t ORDER BY n"))).all()
    assert [r.body for r in rows] == ["theirs", "ours"]  # ...then written after theirs


async def test_a_failed_transaction_leaves_nothing_and_the_next_one_works(db: Database) -> None:
    async def failing() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (body) VALUES ('lost')"))
            raise RuntimeError("the caller failed mid-transaction")

    with pytest.raises(RuntimeError):
        await failing()
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (body) VALUES ('kept')"))
    async with db.read() as conn:
        assert [r.body for r in (await conn.execute(text("SELECT body FROM t"))).all()] == ["kept"]


async def test_a_database_that_cannot_be_reached_is_store_unavailable_and_timed() -> None:
    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    database = Database.create(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    seen: list[str] = []
    database.observe = lambda operation, _seconds: seen.append(operation)
    try:
        with pytest.raises(StoreUnavailable):
            async with database.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        with pytest.raises(StoreUnavailable):
            async with database.write() as conn:
                await conn.exec_driver_sql("SELECT 1")
        with pytest.raises(StoreUnavailable):
            await database.run_write(lambda conn: conn.exec_driver_sql("SELECT 1"))
        assert seen == ["read", "write", "write"]
    finally:
        await database.dispose()


async def test_a_failed_statement_is_not_taken_for_a_lost_database(db: Database) -> None:
    with pytest.raises(IntegrityError):
        await db.run_write(lambda conn: conn.exec_driver_sql("INSERT INTO t (n, body) VALUES (1, NULL)"))
    async with db.read() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar_one() == 0


async def test_a_task_cancelled_inside_a_transaction_leaves_the_database_writable(db: Database) -> None:
    """Cut off inside a statement, an aiosqlite connection used to be closed by SQLAlchemy as one in an unknown state,
    and Python's sqlite3 then kept it as a 'zombie' holding its transaction (its statements still referenced) until
    the garbage collector ran: every later write waited 30 s for the lock and failed. A transaction now runs to its
    end, and the task's cancellation comes when it is over."""
    rng = random.Random(5)
    n = 0

    async def write_forever() -> None:
        nonlocal n
        while True:
            async with db.write() as conn:  # statements that return rows: one cut off is left open
                made = (await conn.execute(text("INSERT INTO t (body) VALUES ('a') RETURNING n"))).scalar_one()
                await conn.execute(text("UPDATE t SET body = 'b' WHERE n = :n RETURNING n"), {"n": made})
            async with db.read() as conn:
                await conn.execute(text("SELECT count(*) FROM t"))
            n += 1

    for _ in range(150):
        task = asyncio.create_task(write_forever())
        await asyncio.sleep(rng.random() * 0.004)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):  # the cancellation still reaches the task
            await task
        assert task.cancelled()
        async with asyncio.timeout(5):  # not the 30 s of a lock held by a closed connection
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t (body) VALUES ('after')"))
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT body, count(*) FROM t GROUP BY body ORDER BY body"))).all()
    counts: dict[str, int] = {row[0]: row[1] for row in rows}
    assert counts["after"] == 150
    assert counts.get("a", 0) == 0  # no transaction was left half-done: every insert got its update
    assert counts["b"] >= n

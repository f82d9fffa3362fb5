"""The hot paths' statements (``store/sql/prepared.py``) and ``Database.run_write`` over SQLite and PostgreSQL: rows
of every count come back whole, constants of a construct are kept, a failed transaction leaves nothing, and a
cancelled caller does not let another writer in before its transaction is over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, bindparam, select, text, update

from wagate.store.sql.db import Database
from wagate.store.sql.prepared import InList, InsertMany, Prepared, Tx, rows_in

T = Table("prep_t", MetaData(), Column("n", Integer, primary_key=True), Column("k", Text), Column("v", Integer))
INSERT = InsertMany(T, ("k", "v"), returning=("k", "n"))
INSERT_NEW = InsertMany(T, ("n", "k", "v"), conflict=lambda insert: insert.on_conflict_do_nothing(index_elements=["n"]))
BUMP = Prepared(lambda _: update(T).where(T.c.k == bindparam("b_k")).values(v=T.c.v + 10), ("b_k",))
ADD = InList(
    lambda _, ks: update(T).where(rows_in([T.c.k], ks)).values(v=T.c.v + bindparam("b_by")), width=1, extra=("b_by",)
)
PAIRS = InList(lambda _, pairs: select(T.c.k, T.c.v).where(rows_in([T.c.k, T.c.v], pairs)), width=2)


@pytest.fixture
async def db(backend: tuple[str, str | None]) -> AsyncIterator[Database]:
    url, schema = backend
    database = Database.create(url, schema=schema)
    async with database.write() as conn:
        key = "SERIAL PRIMARY KEY" if database.dialect == "postgresql" else "INTEGER PRIMARY KEY"
        await conn.execute(text("DROP TABLE IF EXISTS prep_t"))
        await conn.execute(text(f"CREATE TABLE prep_t (n {key}, k TEXT, v INTEGER)"))
    yield database
    async with database.write() as conn:
        await conn.execute(text("DROP TABLE prep_t"))
    await database.dispose()


async def rows(db: Database) -> list[tuple[int, str, int]]:
    async with db.read() as conn:
        return [(r.n, r.k, r.v) for r in await conn.execute(select(T).order_by(T.c.n))]


@pytest.mark.parametrize("count", [1, 2, 3, 127, 128, 129, 300])
async def test_many_rows_go_in_each_with_its_generated_key_in_order(db: Database, count: int) -> None:
    """Over gaps left by deleted rows too (SQLite counts on from its high-water mark, not into the gaps)."""
    await db.run_write(lambda conn: INSERT.run(Tx(conn), [("old", 0)] * 5))
    async with db.write() as conn:
        await conn.execute(text("DELETE FROM prep_t WHERE n > 2"))
    wanted = [(f"k{i}", i) for i in range(count)]
    seqs = await db.run_write(lambda conn: INSERT.seqs(Tx(conn), wanted, key=(0,)))
    stored = {n: (k, v) for n, k, v in await rows(db)}
    assert [stored[n] for n in seqs] == wanted
    assert len(set(seqs)) == count


async def test_conflicting_rows_are_skipped(db: Database) -> None:
    await db.run_write(lambda conn: INSERT_NEW.run(Tx(conn), [(1, "a", 1), (2, "b", 2)]))
    await db.run_write(lambda conn: INSERT_NEW.run(Tx(conn), [(2, "again", 0), (3, "c", 3)]))
    assert await rows(db) == [(1, "a", 1), (2, "b", 2), (3, "c", 3)]


async def test_a_constant_of_the_construct_is_kept_and_executemany_applies_each_row(db: Database) -> None:
    await db.run_write(lambda conn: INSERT_NEW.run(Tx(conn), [(1, "a", 1), (2, "b", 2), (3, "c", 3)]))
    await db.run_write(lambda conn: Tx(conn).run_many(BUMP, [("a",), ("c",)]))
    assert await rows(db) == [(1, "a", 11), (2, "b", 2), (3, "c", 13)]


@pytest.mark.parametrize("count", [1, 3, 4, 5, 600, 1100])
async def test_in_lists_of_any_length_match_each_item_once(db: Database, count: int) -> None:
    """Padded to a power of two by repeating the last item, and split past 512 items: no row counts twice."""
    await db.run_write(lambda conn: INSERT_NEW.run(Tx(conn), [(n, f"k{n}", n) for n in range(1, 1201)]))
    keys = [(f"k{n}",) for n in range(1, count + 1)]
    changed = await db.run_write(lambda conn: ADD.run(Tx(conn), keys, (1000,)))
    assert changed == count
    assert [v for _, _, v in await rows(db)][: count + 1] == [n + 1000 for n in range(1, count + 1)] + [count + 1]
    found = await db.run_write(lambda conn: PAIRS.fetch(Tx(conn), [(f"k{n}", n + 1000) for n in range(1, count + 1)]))
    assert sorted(found) == sorted((f"k{n}", n + 1000) for n in range(1, count + 1))


async def test_a_failed_transaction_leaves_nothing_and_the_next_one_works(db: Database) -> None:
    def failing(conn: Connection) -> None:
        INSERT.run(Tx(conn), [("lost", 1)])
        raise RuntimeError("the caller failed mid-transaction")

    with pytest.raises(RuntimeError):
        await db.run_write(failing)
    await db.run_write(lambda conn: INSERT.run(Tx(conn), [("kept", 2)]))
    assert [(k, v) for _, k, v in await rows(db)] == [("kept", 2)]


async def test_a_cancelled_caller_keeps_the_writer_until_its_transaction_is_over(tmp_path: object) -> None:
    """SQLite: the transaction goes on in its thread after its caller is cancelled; the caller gives the writer up
    only once it is over (else the next writer would wait inside the driver for SQLite's lock), and the next writer
    sees what it committed."""
    db = Database.create(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE prep_t (n INTEGER PRIMARY KEY, k TEXT, v INTEGER)"))
        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow(conn: Connection) -> None:
            loop.call_soon_threadsafe(started.set)
            INSERT.run(Tx(conn), [("first", 1)])
            conn.exec_driver_sql(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
                "SELECT count(*) FROM c"
            ).all()

        first = asyncio.ensure_future(db.run_write(slow))
        await started.wait()
        first.cancel()
        await asyncio.sleep(0.05)
        assert not first.done()  # still waiting, holding the writer, for its transaction to end
        async with db.write() as conn:
            seen = (await conn.execute(select(T.c.k))).scalars().all()
        assert seen == ["first"]  # the cancelled caller's transaction was over (and committed) before this one
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        await db.dispose()

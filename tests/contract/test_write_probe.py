"""The write probe (``/ready`` after a refused write) needs as much room as it says, on every backend: its bytes are
random, so PostgreSQL cannot compress them into a few hundred (as it did a string of one repeated letter), it writes
a table of its own and leaves no row behind, and its success clears the refusal."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from wagate.errors import StoreUnavailable
from wagate.store.base import Store
from wagate.store.sql import SqlStore, schema
from wagate.store.sql.db import PROBE_BYTES, probe_row


class _RolledBack(Exception):
    pass


def _db(store: Store) -> SqlStore:
    assert isinstance(store, SqlStore)
    return store


async def test_a_probe_leaves_nothing_behind_and_clears_a_refusal(store: Store) -> None:
    sql = _db(store)
    migrations_before = await _count(sql, schema.migrations)
    sql.db.refused = StoreUnavailable("the disk is full")
    assert await store.write_refusal() is None
    assert sql.db.refused is None
    assert await _count(sql, schema.write_probe) == 0
    assert await _count(sql, schema.migrations) == migrations_before


async def test_the_probe_stores_every_byte_it_claims(store: Store) -> None:
    """What the probe's row takes in the database, measured inside a transaction that is then rolled back."""
    sql = _db(store)
    if sql.backend != "postgresql":
        pytest.skip("SQLite stores a blob as it is: nothing to compress")
    probe = schema.write_probe
    size = func.pg_column_size(probe.c.filler)
    stored: dict[str, int] = {}

    async def measure() -> None:
        async with sql.db.write() as conn:
            await conn.execute(insert(probe).values(probe_row()))
            await conn.execute(insert(probe).values(id="repetitive", filler=b"x" * PROBE_BYTES))
            stored.update((row.id, row.size) for row in await conn.execute(select(probe.c.id, size.label("size"))))
            raise _RolledBack

    with pytest.raises(_RolledBack):
        await measure()
    assert await _count(sql, probe) == 0
    repetitive = stored.pop("repetitive")
    assert repetitive < PROBE_BYTES // 10  # what the old probe wrote: compressed to almost nothing
    (random,) = stored.values()
    assert random >= PROBE_BYTES


async def _count(sql: SqlStore, table: object) -> int:
    async with sql.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]

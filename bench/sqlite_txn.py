"""What one small SQLite write transaction costs through the gateway's database handle and through ``sqlite3`` alone.

    python bench/sqlite_txn.py

Transactions of 1 and of 10 single-row inserts, 200 each, in a new database file (WAL, ``synchronous=FULL``): first
through ``wagate.store.sql.db.Database`` (SQLAlchemy over aiosqlite, as the gateway writes), then with the standard
library's ``sqlite3`` on the calling thread. Prints one JSON line with the median milliseconds of each.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from wagate.store.sql.db import Database

ROUNDS = 200
BODY = "x" * 100


async def through_database(path: Path, inserts: int) -> float:
    db = Database.create(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b TEXT)"))
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            async with db.write() as conn:
                for _ in range(inserts):
                    await conn.execute(text("INSERT INTO t (b) VALUES (:b)"), {"b": BODY})
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000
    finally:
        await db.dispose()


def through_sqlite3(path: Path, inserts: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b TEXT)")
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            for _ in range(inserts):
                connection.execute("INSERT INTO t (b) VALUES (?)", (BODY,))
            connection.execute("COMMIT")
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000
    finally:
        connection.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for inserts in (1, 10):
            figures[f"database_{inserts}_insert_ms"] = round(
                asyncio.run(through_database(Path(tmp) / f"db{inserts}.sqlite", inserts)), 3
            )
            figures[f"sqlite3_{inserts}_insert_ms"] = round(
                through_sqlite3(Path(tmp) / f"s{inserts}.sqlite", inserts), 3
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Statements of the hot write paths, compiled once per dialect and run on the driver's own cursor.

Every message the gateway receives writes a handful of rows (the message, its chat, the sender's name, the event,
a delivery per webhook, the ratchet it advanced). Through SQLAlchemy's execution layer each statement built its
construct again, derived its cache key, processed every parameter and built result metadata: more CPU than SQLite's
own work on those rows. Here a statement is a Core construct as anywhere else, compiled once for the connection's
dialect (SQLite's ``?``, asyncpg's ``$n``); parameters go as positional tuples straight to the driver's cursor
(the standard library's ``sqlite3`` on the SQLite writer's thread, SQLAlchemy's asyncpg adapter on PostgreSQL), and
rows come back as tuples.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ClauseElement

Row = tuple[Any, ...]
Builder = Callable[[Dialect], ClauseElement]
# Rows of the largest multi-row INSERT (SQLite allows 32,766 bound values, asyncpg 32,767); a power of two.
MAX_ROWS = 128


class Prepared:
    """One statement with named bind parameters, run with positional tuples in the order of ``params``. A bind
    parameter not named there keeps the value the construct gave it (the ``1`` of ``version + 1``)."""

    def __init__(self, build: Builder, params: Sequence[str]) -> None:
        self._build = build
        self.params = tuple(params)
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def sql(self, dialect: Dialect) -> _Compiled:
        """The statement's text for ``dialect``, and how to turn a tuple in ``params`` order into its arguments."""
        found = self._compiled.get(dialect.name)
        if found is None:
            with self._lock:
                compiled = self._build(dialect).compile(dialect=dialect)
                names = getattr(compiled, "positiontup", None) or []
                binds = getattr(compiled, "binds", {})
                index = {name: i for i, name in enumerate(self.params)}
                order = tuple(index.get(n, -1) for n in names)
                constants = tuple(None if n in index else binds[n].effective_value for n in names)
                if order == tuple(range(len(self.params))):
                    found = _Compiled(compiled.string, None, ())
                else:
                    found = _Compiled(compiled.string, order, constants)
                self._compiled[dialect.name] = found
        return found


class _Compiled:
    __slots__ = ("constants", "order", "sql")

    def __init__(self, sql: str, order: tuple[int, ...] | None, constants: tuple[Any, ...]) -> None:
        self.sql = sql
        self.order = order  # None: the caller's tuple as it is; -1: a constant
        self.constants = constants

    def args(self, params: Sequence[Any]) -> Sequence[Any]:
        if self.order is None:
            return params
        return tuple(params[i] if i >= 0 else c for i, c in zip(self.order, self.constants, strict=True))


class Sized:
    """A statement whose shape depends on a count (the rows of a multi-row INSERT, the values of an IN list),
    compiled once per count; ``names(count)`` lists its bind parameters in the order callers give values."""

    def __init__(self, build: Callable[[Dialect, int], ClauseElement], names: Callable[[int], Sequence[str]]) -> None:
        self._build = build
        self._names = names
        self._by_count: dict[int, Prepared] = {}

    def at(self, count: int) -> Prepared:
        found = self._by_count.get(count)
        if found is None:
            found = self._by_count[count] = Prepared(lambda dialect: self._build(dialect, count), self._names(count))
        return found


class InsertMany:
    """``INSERT INTO table (columns) VALUES (...), (...) [ON CONFLICT (keys) DO NOTHING] [RETURNING ...]``: many rows
    in one statement, so that RETURNING answers for all of them (``executemany`` cannot return rows). Rows that come
    back are not promised in the order they went in: callers match them by key."""

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        returning: Sequence[str] = (),
        skip_conflicts_on: Sequence[str] = (),
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.returning = tuple(returning)
        self.skip_conflicts_on = tuple(skip_conflicts_on)
        self._sized = Sized(self._statement, lambda count: [f"{c}_{row}" for row in range(count) for c in self.columns])

    def _statement(self, dialect: Dialect, count: int) -> ClauseElement:
        values: list[dict[str, Any]] = [{c: bindparam(f"{c}_{row}") for c in self.columns} for row in range(count)]
        statement: Any
        if self.skip_conflicts_on:
            statement = dialect_insert(dialect)(self.table).values(values)
            statement = statement.on_conflict_do_nothing(index_elements=list(self.skip_conflicts_on))
        else:
            statement = insert(self.table).values(values)
        if self.returning:
            statement = statement.returning(*(self.table.c[name] for name in self.returning))
        return statement  # type: ignore[no-any-return]

    def run(self, tx: Tx, rows: Sequence[Row]) -> list[Row]:
        """Insert ``rows`` (tuples in the order of ``columns``); the RETURNING rows of all of them.

        The rows go in statements of 128, 64, ..., 2 or 1 rows (at most one of each below 128): a statement is
        compiled once per row count, and compiling one of many rows costs milliseconds, so counts are few."""
        out: list[Row] = []
        start = 0
        while start < len(rows):
            size = min(MAX_ROWS, 1 << ((len(rows) - start).bit_length() - 1))
            flat = [value for row in rows[start : start + size] for value in row]
            start += size
            statement = self._sized.at(size)
            if self.returning:
                out.extend(tx.fetch(statement, flat))
            else:
                tx.run(statement, flat)
        return out


def dialect_insert(dialect: Dialect) -> Callable[[Table], Any]:
    """The dialect's INSERT construct (the one with ON CONFLICT)."""
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


class Tx:
    """Driver-level statements inside a transaction of a SQLAlchemy ``Connection`` (its own cursor)."""

    def __init__(self, conn: Connection) -> None:
        self.dialect = conn.dialect
        self._cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def fetch(self, statement: Prepared, params: Sequence[Any] = ()) -> list[Row]:
        compiled = statement.sql(self.dialect)
        self._cursor.execute(compiled.sql, tuple(compiled.args(params)))
        return [tuple(row) for row in self._cursor.fetchall()]

    def run(self, statement: Prepared, params: Sequence[Any] = ()) -> int:
        """Execute once; the number of rows it changed."""
        compiled = statement.sql(self.dialect)
        self._cursor.execute(compiled.sql, tuple(compiled.args(params)))
        return int(self._cursor.rowcount)

    def run_many(self, statement: Prepared, rows: Sequence[Row]) -> None:
        """Execute once per row (``executemany``: one statement, its loop in the driver)."""
        if not rows:
            return
        compiled = statement.sql(self.dialect)
        self._cursor.executemany(compiled.sql, rows if compiled.order is None else [compiled.args(r) for r in rows])

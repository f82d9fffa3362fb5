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
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, tuple_
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ClauseElement

__all__ = [
    "MAX_IN",
    "MAX_ROWS",
    "Builder",
    "InList",
    "InsertMany",
    "Prepared",
    "Row",
    "Sized",
    "Tx",
    "dialect_insert",
    "record_type",
    "rows_in",
]

Row = tuple[Any, ...]
Builder = Callable[[Dialect], ClauseElement]
# Rows of the largest multi-row INSERT and items of the longest IN list (SQLite allows 32,766 bound values, asyncpg
# 32,767); powers of two.
MAX_ROWS = 128
MAX_IN = 512


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


def _chunks(count: int) -> list[tuple[int, int]]:
    """(start, size) of statements of 128, 64, ..., 2 or 1 rows covering ``count`` rows (at most one of each size
    below 128): a statement is compiled once per row count, and compiling one of many rows costs milliseconds."""
    out = []
    start = 0
    while start < count:
        size = min(MAX_ROWS, 1 << ((count - start).bit_length() - 1))
        out.append((start, size))
        start += size
    return out


class InsertMany:
    """``INSERT INTO table (columns) VALUES (...), (...) [ON CONFLICT ...]``: many rows in one statement.

    One statement rather than ``executemany`` because SQLite's driver releases the GIL around every step of a
    statement, once per row for ``executemany`` or for RETURNING rows, and the writer's thread then waits for the
    busy event loop to hand the GIL back each time: a multi-row statement without RETURNING is one step.
    ``conflict`` adds an ON CONFLICT clause to the dialect's insert (rows of one statement must not conflict with
    each other: PostgreSQL refuses to update a row twice in one statement)."""

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        conflict: Callable[[Any], Any] | None = None,
        returning: Sequence[str] = (),
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.conflict = conflict
        self.returning = tuple(returning)
        names = lambda count: [f"row{row}_{c}" for row in range(count) for c in self.columns]  # noqa: E731
        self._plain = Sized(lambda dialect, count: self._statement(dialect, count, ()), names)
        self._returning = Sized(lambda dialect, count: self._statement(dialect, count, self.returning), names)

    def _statement(self, dialect: Dialect, count: int, returning: Sequence[str]) -> ClauseElement:
        values: list[dict[str, Any]] = [{c: bindparam(f"row{row}_{c}") for c in self.columns} for row in range(count)]
        statement: Any = dialect_insert(dialect)(self.table).values(values)
        if self.conflict is not None:
            statement = self.conflict(statement)
        if returning:
            statement = statement.returning(*(self.table.c[name] for name in returning))
        return statement  # type: ignore[no-any-return]

    def run(self, tx: Tx, rows: Sequence[Row]) -> None:
        """Insert ``rows`` (tuples in the order of ``columns``)."""
        for start, size in _chunks(len(rows)):
            tx.run(self._plain.at(size), [value for row in rows[start : start + size] for value in row])

    def returned(self, tx: Tx, rows: Sequence[Row]) -> list[Row]:
        """Insert ``rows``; the RETURNING rows of those inserted, in no promised order."""
        out: list[Row] = []
        for start, size in _chunks(len(rows)):
            flat = [value for row in rows[start : start + size] for value in row]
            out.extend(tx.fetch(self._returning.at(size), flat))
        return out

    def seqs(self, tx: Tx, rows: Sequence[Row], key: Sequence[int]) -> list[int]:
        """Insert ``rows`` and answer the generated key (``returning``'s last column) of each, in order. On SQLite
        the rows of one statement take consecutive rowids ending at the last one inserted (the table is this
        writer's alone meanwhile), so nothing comes back row by row; PostgreSQL answers with RETURNING, matched by
        ``key`` (the positions, in ``columns``, of the columns that ``returning`` names first)."""
        out: list[int] = []
        sqlite = tx.dialect.name == "sqlite"
        for start, size in _chunks(len(rows)):
            chunk = rows[start : start + size]
            flat = [value for row in chunk for value in row]
            if sqlite:
                inserted = tx.run(self._plain.at(size), flat)
                if inserted != size:
                    raise RuntimeError(f"{self.table.name}: {inserted} of {size} rows inserted")
                last = tx.lastrowid()
                out.extend(range(last - size + 1, last + 1))
                continue
            generated = {tuple(row[:-1]): int(row[-1]) for row in tx.fetch(self._returning.at(size), flat)}
            out.extend(generated[tuple(row[i] for i in key)] for row in chunk)
        return out


class InList:
    """A statement with an IN list of ``width``-tuples (and ``extra`` parameters before it). The list is padded to
    a power of two by repeating its last item (harmless in an IN list), so that few shapes are ever compiled.

    ``build`` is given the items as lists of bind parameters, one list per item. SQLite answers a row-value IN list
    (``(a, b) IN ((?, ?), ...)``) by scanning the whole index; a statement that must seek adds a plain IN list of
    the leading column (``a IN (?, ...) AND (a, b) IN (...)``), which it searches by."""

    def __init__(
        self, build: Callable[[Dialect, list[list[Any]]], ClauseElement], width: int, extra: Sequence[str] = ()
    ) -> None:
        self.width = width
        self.extra = tuple(extra)

        def statement(dialect: Dialect, count: int) -> ClauseElement:
            return build(dialect, [[bindparam(f"i{n}_{k}") for k in range(width)] for n in range(count)])

        self._sized = Sized(
            statement, lambda count: [*self.extra, *(f"i{n}_{k}" for n in range(count) for k in range(width))]
        )

    def _args(self, items: Sequence[Row], extra: Sequence[Any]) -> tuple[Prepared, list[Any]]:
        count = min(MAX_IN, 1 << (len(items) - 1).bit_length())
        padded = [*items, *([items[-1]] * (count - len(items)))]
        return self._sized.at(count), [*extra, *(value for item in padded for value in item)]

    def _parts(self, items: Sequence[Row]) -> list[Sequence[Row]]:
        return [items[start : start + MAX_IN] for start in range(0, len(items), MAX_IN)]

    def run(self, tx: Tx, items: Sequence[Row], extra: Sequence[Any] = ()) -> int:
        """Execute for ``items`` (in statements of up to ``MAX_IN``); the rows changed."""
        return sum(tx.run(*self._args(part, extra)) for part in self._parts(items))

    def fetch(self, tx: Tx, items: Sequence[Row], extra: Sequence[Any] = ()) -> list[Row]:
        return [row for part in self._parts(items) for row in tx.fetch(*self._args(part, extra))]


def rows_in(columns: Sequence[Any], items: list[list[Any]]) -> Any:
    """``(columns) IN (items)``, searchable by the first column's index (see :class:`InList`)."""
    first = columns[0].in_([item[0] for item in items])
    if len(columns) == 1:
        return first
    return first & tuple_(*columns).in_([tuple_(*item) for item in items])


def record_type(table: Table) -> Callable[[Row], Any]:
    """What turns a row of ``select(table)`` (a tuple) into a record with the table's column names as attributes,
    as the stores' readers of rows take them."""
    record = namedtuple(f"{table.name}_row", [column.name for column in table.columns])  # type: ignore[misc]
    return record._make


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

    def lastrowid(self) -> int:
        """SQLite: the rowid of the last row the previous statement inserted."""
        return int(self._cursor.lastrowid)

    def run_many(self, statement: Prepared, rows: Sequence[Row]) -> None:
        """Execute once per row (``executemany``: one statement, its loop in the driver)."""
        if not rows:
            return
        compiled = statement.sql(self.dialect)
        self._cursor.executemany(compiled.sql, rows if compiled.order is None else [compiled.args(r) for r in rows])

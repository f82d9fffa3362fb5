"""The migrations produce exactly the schema the code declares (``wagate.store.sql.schema``), on every backend.

Two empty databases of the same kind: the migrations are applied to one, the declared schema is created in the
other, and both are read back the same way (SQLAlchemy's inspector) and compared: tables, columns (type, nullability,
default), primary keys, foreign keys, unique constraints and indexes (columns, uniqueness, a partial index's
condition). A migration that adds what the declaration lacks, or a declaration that drifts from what the migrations
made, fails here with the difference.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.services import PG_DSN, pg_url
from wagate.store import open_store
from wagate.store.sql.schema import metadata

Shape = dict[str, Any]


def _affinity(type_name: str) -> str:
    """SQLite's type affinity of a declared type (its documented rules): all SQLite keeps of a column's type."""
    name = type_name.upper()
    if "INT" in name:
        return "INTEGER"
    if any(part in name for part in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in name or not name:
        return "BLOB"
    if any(part in name for part in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _condition(options: dict[str, Any]) -> str | None:
    where = options.get("sqlite_where", options.get("postgresql_where"))
    return None if where is None else re.sub(r"\s+", " ", str(where)).strip()


def _read(sync: Connection, schema: str | None) -> Shape:
    """The schema as the database reports it, in a form both databases' reports compare in."""
    inspector = inspect(sync)
    dialect = sync.dialect
    sqlite = dialect.name == "sqlite"
    shape: Shape = {}
    for table in sorted(inspector.get_table_names(schema=schema)):
        pk = inspector.get_pk_constraint(table, schema=schema)["constrained_columns"]
        columns = {}
        for column in inspector.get_columns(table, schema=schema):
            kind = column["type"].compile(dialect=dialect)
            # SQLite lets a non-INTEGER primary key column hold NULL unless it says NOT NULL (a legacy quirk);
            # wagate never stores one, so a primary key column counts as NOT NULL whichever way it was written.
            nullable = column["nullable"] and not (sqlite and column["name"] in pk)
            default = column.get("default")
            if default is not None and schema is not None:  # a sequence's default names the schema it is in
                default = default.replace(f'"{schema}".', "").replace(f"{schema}.", "")
            columns[column["name"]] = (
                _affinity(kind) if sqlite else kind,
                nullable,
                None if default is None else str(default).strip("'"),
            )
        shape[table] = {
            "columns": columns,
            "primary key": pk,
            "foreign keys": _sqlite_foreign_keys(sync, table) if sqlite else _foreign_keys(inspector, table, schema),
            "unique": sorted(
                tuple(unique["column_names"]) for unique in inspector.get_unique_constraints(table, schema=schema)
            ),
            "indexes": {
                index["name"]: (
                    tuple(index["column_names"]),
                    bool(index["unique"]),
                    _condition(index.get("dialect_options", {})),
                )
                for index in inspector.get_indexes(table, schema=schema)
                if not index.get("duplicates_constraint")  # a unique constraint's own index, compared above
            },
        }
        if sqlite:  # AUTOINCREMENT (ids never reused) is in the table's SQL only
            sql = sync.execute(text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}).scalar_one()
            shape[table]["autoincrement"] = "AUTOINCREMENT" in sql.upper()
    return shape


def _foreign_keys(inspector: Any, table: str, schema: str | None) -> list[tuple[Any, ...]]:
    return sorted(
        (
            tuple(fk["constrained_columns"]),
            fk["referred_table"],
            tuple(fk["referred_columns"]),
            fk.get("options", {}).get("ondelete"),
        )
        for fk in inspector.get_foreign_keys(table, schema=schema)
    )


def _sqlite_foreign_keys(sync: Connection, table: str) -> list[tuple[Any, ...]]:
    """SQLite's own account (the inspector reads ON DELETE only from a table-level FOREIGN KEY clause, not from a
    column's REFERENCES, so it would report one rule two ways)."""
    keys: dict[int, tuple[list[str], str, list[str], str | None]] = {}
    for row in sync.execute(text(f"PRAGMA foreign_key_list({table})")).mappings():
        found = keys.setdefault(
            row["id"], ([], row["table"], [], None if row["on_delete"] == "NO ACTION" else row["on_delete"])
        )
        found[0].append(row["from"])
        found[2].append(row["to"])
    return sorted((tuple(cols), referred, tuple(to), rule) for cols, referred, to, rule in keys.values())


async def _shape(engine: AsyncEngine, schema: str | None) -> Shape:
    async with engine.connect() as conn:
        found: Shape = await conn.run_sync(_read, schema)
    await engine.dispose()
    return found


def _differences(migrated: Shape, declared: Shape) -> list[str]:
    lines = []
    for table in sorted(set(migrated) | set(declared)):
        if table not in declared:
            lines.append(f"{table}: made by the migrations, not declared")
        elif table not in migrated:
            lines.append(f"{table}: declared, not made by the migrations")
        else:
            for part in declared[table]:
                if migrated[table][part] != declared[table][part]:
                    lines.append(
                        f"{table} {part}:\n  migrations: {migrated[table][part]}\n  declared:   {declared[table][part]}"
                    )
    return lines


Place = tuple[str, str | None]  # a database URL, and the PostgreSQL schema in it


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def two_empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Place, Place]]:
    """Two empty databases of one kind: SQLite files, or PostgreSQL schemas (dropped afterwards)."""
    if request.param == "sqlite":
        yield (f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", None), (f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", None)
        return
    first: str = request.getfixturevalue("pg_schema")  # skips, or fails under WAGATE_REQUIRE_SERVICES, without it
    second = f"{first}_d"
    asyncio.run(_pg(f"CREATE SCHEMA {second}"))
    try:
        yield (pg_url(), first), (pg_url(), second)
    finally:
        asyncio.run(_pg(f"DROP SCHEMA {second} CASCADE"))


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def databases(two_empty: tuple[Place, Place]) -> tuple[Shape, Shape]:
    """(the schema the migrations made, the schema declared), read from two empty databases of one kind."""
    (migrated_url, migrated_schema), (declared_url, declared_schema) = two_empty
    store = await open_store(migrated_url, schema=migrated_schema)  # migrates
    await store.close()
    migrated = await _shape(_engine(migrated_url, migrated_schema), migrated_schema)
    declared_engine = _engine(declared_url, declared_schema)
    async with declared_engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    declared = await _shape(declared_engine, declared_schema)
    return migrated, declared


def _engine(url: str, schema: str | None) -> AsyncEngine:
    if schema is None:
        return create_async_engine(url)
    return create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})


async def test_the_migrations_make_the_declared_schema(databases: tuple[Shape, Shape]) -> None:
    migrated, declared = databases
    assert migrated, "the migrations made no table"
    differences = _differences(migrated, declared)
    assert not differences, "schema drift:\n" + "\n".join(differences)


async def test_the_comparison_sees_a_column_index_or_constraint_that_differs(
    databases: tuple[Shape, Shape],
) -> None:
    """The check itself can fail: alter the declared side the ways drift would, and each is reported."""
    migrated, declared = databases
    changed = {table: dict(shape) for table, shape in declared.items()}
    messages = changed["messages"]
    messages["columns"] = {**messages["columns"], "extra": ("TEXT", True, None)}
    messages["indexes"] = {**messages["indexes"], "ix_messages_queue": (("session_id", "seq"), False, None)}
    changed["sessions"] = {**changed["sessions"], "unique": []}
    differences = _differences(migrated, changed)
    assert [line.split(":")[0] for line in differences] == [
        "messages columns",
        "messages indexes",
        "sessions unique",
    ]

"""A look at a database without changing it, for ``wagate doctor``: its schema version, the keys that sealed what it
holds, the engines its sessions use. Opening the store (``open_store``) would apply pending migrations instead."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, union
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from wagate.errors import StoreUnavailable
from wagate.store import describe_failure, driver_url, shown_url
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.migrations import LATEST_VERSION, current_version

__all__ = ["StoreState", "inspect_store"]


@dataclass(frozen=True, slots=True)
class StoreState:
    version: int  # the last migration applied; 0 for an empty database
    latest: int  # the last migration this version of wagate has
    kek_ids: frozenset[str]  # the key-encryption keys that wrapped or sealed what it holds
    engines: frozenset[str]  # the engines of its sessions


async def inspect_store(url: str, *, schema_name: str | None = None) -> StoreState | None:
    """The database's state; None for a SQLite file that does not exist yet (the first start makes it).
    ConfigError for a URL that cannot work, StoreUnavailable (saying why) for a database that cannot be read."""
    resolved = driver_url(url)
    if _no_sqlite_file(resolved):
        return None
    db = Database.create(resolved, schema=schema_name, pool_size=1)
    try:
        version = await current_version(db)
        kek_ids: frozenset[str] = frozenset()
        engines: frozenset[str] = frozenset()
        if version > 0:
            async with db.read() as conn:
                keys = union(
                    select(schema.session_keys.c.kek_id),
                    select(schema.events.c.kek_id),
                    select(schema.webhooks.c.kek_id),
                )
                kek_ids = frozenset((await conn.execute(keys)).scalars())
                engines = frozenset((await conn.execute(select(schema.sessions.c.engine).distinct())).scalars())
        return StoreState(version, LATEST_VERSION, kek_ids, engines)
    except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(f"cannot read the database at {shown_url(url)}: {describe_failure(exc)}") from exc
    finally:
        await db.dispose()


def _no_sqlite_file(resolved: str) -> bool:
    parsed = make_url(resolved)
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) and not Path(str(parsed.database)).exists()

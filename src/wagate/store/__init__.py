"""Persistence. ``open_store`` picks the backend from the database URL's scheme."""

from __future__ import annotations

from wagate.clock import Clock, system_clock
from wagate.errors import ConfigError
from wagate.store.base import Sealer, Store


async def open_store(
    url: str,
    *,
    schema: str | None = None,
    pool_size: int = 10,
    clock: Clock = system_clock,
    sealer: Sealer | None = None,
) -> Store:
    """Open (and migrate) the store at ``url``: ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``.

    ``sealer`` seals what the store keeps for tenants (the gateway passes its keyring's); without one it is kept
    as it is, which only tools and tests of the store alone should do."""
    scheme = url.split(":", 1)[0]
    if scheme in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        from wagate.store.sql import open_sql_store

        return await open_sql_store(url, schema=schema, pool_size=pool_size, clock=clock, sealer=sealer)
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r}: use sqlite+aiosqlite:///PATH or postgresql+asyncpg://HOST/DB"
    )

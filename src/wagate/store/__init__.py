"""Persistence. ``open_store`` picks the backend from the database URL's scheme."""

from __future__ import annotations

import os
import socket

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from wagate.clock import Clock, system_clock
from wagate.errors import ConfigError, StoreUnavailable
from wagate.store.base import Store
from wagate.store.contracts.auth import Sealer

__all__ = ["DRIVERS", "URL_FORMS", "describe_failure", "driver_url", "open_store", "shown_url"]

# Each scheme an operator may write, and the driver wagate uses for it: PostgreSQL's own tools and hosting services
# write postgresql:// or postgres://.
DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
URL_FORMS = "sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"


def driver_url(url: str) -> str:
    """``url`` as SQLAlchemy opens it, with wagate's driver for its scheme (``postgresql://`` becomes
    ``postgresql+asyncpg://``; libpq's ``sslmode`` is asyncpg's ``ssl``). ConfigError for a URL that names no
    database wagate supports, or that does not parse; its message never repeats the URL (it may hold a password)."""
    parsed = _parse(url)
    driver = DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(f"unsupported database {parsed.drivername!r}: use {URL_FORMS}")
    parsed = parsed.set(drivername=driver)
    if driver.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ConfigError(f"a SQLite URL names its file: {URL_FORMS}")
    if driver.startswith("postgresql") and "sslmode" in parsed.query:
        query = dict(parsed.query)
        query["ssl"] = query.pop("sslmode")
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=False)


def shown_url(url: str) -> str:
    """The URL to name in a message: without its password."""
    try:
        return _parse(url).render_as_string(hide_password=True)
    except ConfigError:
        return "(malformed)"


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
        port = parsed.port  # parsed only when asked for
    except (ArgumentError, ValueError):
        raise ConfigError(f"malformed database URL: use {URL_FORMS}") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"malformed database URL: port {port} is not in 1-65535")
    return parsed


def describe_failure(exc: BaseException) -> str:
    """Why a database could not be opened, in the driver's words (its first line): the innermost cause."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if isinstance(root, socket.gaierror):
        return f"the host name does not resolve ({root.strerror})"
    if isinstance(root, OSError) and root.errno:
        where = f": {root.filename}" if root.filename else ""
        return f"{os.strerror(root.errno)}{where}"
    if isinstance(root, SQLAlchemyError) and not root.args:
        return type(root).__name__
    text = str(root).strip().splitlines()
    return text[0] if text else type(root).__name__


async def open_store(
    url: str,
    *,
    schema: str | None = None,
    pool_size: int = 10,
    clock: Clock = system_clock,
    sealer: Sealer | None = None,
) -> Store:
    """Open (and migrate) the store at ``url``: ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` (see
    :func:`driver_url` for the other forms accepted).

    ``sealer`` seals what the store keeps for tenants (the gateway passes its keyring's); without one it is kept
    as it is, which only tools and tests of the store alone should do. ConfigError for a URL that cannot work,
    StoreUnavailable (saying why) for a database that cannot be opened."""
    from wagate.store.sql import open_sql_store

    resolved = driver_url(url)
    try:
        return await open_sql_store(resolved, schema=schema, pool_size=pool_size, clock=clock, sealer=sealer)
    except (StoreUnavailable, SQLAlchemyError, OSError, TypeError, ValueError) as exc:
        # TypeError and ValueError: what the driver says of a URL parameter it does not take (?bogus=1).
        raise StoreUnavailable(f"cannot open the database at {shown_url(url)}: {describe_failure(exc)}") from exc

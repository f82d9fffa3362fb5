"""What a database error means to the rest of wagate: the database refusing service for now (unreachable, read-only,
out of disk) is a :class:`StoreUnavailable`, which callers wait out and the API answers with a JSON 503; any other
error is the statement's own and stays as it is.

SQLite says why in its result code (``sqlite3`` gives it on the exception), PostgreSQL in its SQLSTATE.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError

from wagate.errors import StorageFull, StoreUnavailable

__all__ = ["READ_ONLY", "UNREACHABLE", "refusal"]

UNREACHABLE = "the database cannot be reached"
READ_ONLY = "the database is read-only: it refuses writes"

_SQLITE: dict[int, tuple[type[StoreUnavailable], str]] = {
    sqlite3.SQLITE_FULL: (StorageFull, "the database's disk is full"),
    sqlite3.SQLITE_READONLY: (StoreUnavailable, READ_ONLY),
    sqlite3.SQLITE_IOERR: (StoreUnavailable, "the database's disk failed a read or a write"),
    sqlite3.SQLITE_CANTOPEN: (StoreUnavailable, "the database file cannot be opened"),
}
_POSTGRES: dict[str, tuple[type[StoreUnavailable], str]] = {
    "53100": (StorageFull, "the database server's disk is full"),  # disk_full
    "25006": (StoreUnavailable, READ_ONLY),  # read_only_sql_transaction: a standby, or read-only by setting
}
_POSTGRES_CLASSES = {
    "08": UNREACHABLE,  # connection exceptions
    "28": "the database refuses the gateway's login",  # invalid authorization: a role disabled, a password changed
    "53": "the database server is out of resources",  # insufficient resources (memory, connections)
    "57P": "the database server is shutting down or starting",  # admin or crash shutdown, cannot connect now
}
_UNREACHABLE_TEXT = ("connection refused", "could not connect", "connection was closed", "unable to open")


def refusal(exc: BaseException) -> StoreUnavailable | None:
    """The refusal ``exc`` reports, or None when it is an error of the statement itself (or no database error).
    ``exc`` is SQLAlchemy's wrapper of the driver's error, or the driver's own (statements run on its cursor)."""
    if isinstance(exc, OSError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return StoreUnavailable(UNREACHABLE)
    for cause in (exc, getattr(exc, "orig", None)):
        code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(code, int) and (sqlite_refusal := _SQLITE.get(code & 0xFF)) is not None:
            kind, message = sqlite_refusal
            return kind(message)
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str):
            if (postgres_refusal := _POSTGRES.get(state)) is not None:
                kind, message = postgres_refusal
                return kind(message)
            for prefix, meaning in _POSTGRES_CLASSES.items():
                if state.startswith(prefix):
                    return StoreUnavailable(meaning)
    if isinstance(exc, DBAPIError) and any(marker in str(exc).lower() for marker in _UNREACHABLE_TEXT):
        return StoreUnavailable(UNREACHABLE)
    return None

"""Keyset cursors of the API's lists: what a page's ``next`` carries and ``?cursor=`` gives back.

A cursor is the sort key of the last item of a page, written as text that a pattern describes exactly: every cursor
the document allows is a position in the list (the next page starts after it), and none carries a value the store
cannot compare (a number past BIGINT, an infinity, U+0000). Anything else is ``422 invalid_cursor``.

=========  ==================================  ===========================================
list       cursor                              example
=========  ==================================  ===========================================
messages   the message's sequence number       ``1042``
chats      last message time, ``_``, chat id   ``1712345678.25_15550001@s.whatsapp.net``
contacts   the id                              ``15550001@s.whatsapp.net``
groups     the id                              ``120363000000000001@g.us``
=========  ==================================  ===========================================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Query

from wagate.errors import Unprocessable

__all__ = [
    "ID_CURSOR",
    "SEQ_CURSOR",
    "TIME_ID_CURSOR",
    "IdCursor",
    "SeqCursor",
    "TimeIdCursor",
    "cursor_query",
    "next_cursor",
    "read_id",
    "read_seq",
    "read_time_id",
    "time_id_cursor",
]

SEQ_CURSOR = r"^[0-9]{1,18}$"
ID_CURSOR = r"^[^\x00]{1,500}$"
# A time as Python's repr writes it (at most 17 digits each side of the point, a two-digit exponent: always finite).
TIME_ID_CURSOR = r"^-?[0-9]{1,17}(?:\.[0-9]{1,24})?(?:e[+-][0-9]{2})?_[^\x00]{1,400}$"

T = TypeVar("T")


def cursor_query(pattern: str) -> Any:
    """A ``cursor`` query parameter whose document gives ``pattern`` (the check is ours, for its clearer answer)."""
    return Query(description="`next` of the previous page", json_schema_extra={"pattern": pattern})


SeqCursor = Annotated[str | None, cursor_query(SEQ_CURSOR)]
IdCursor = Annotated[str | None, cursor_query(ID_CURSOR)]
TimeIdCursor = Annotated[str | None, cursor_query(TIME_ID_CURSOR)]

_SEQ = re.compile(SEQ_CURSOR)
_ID = re.compile(ID_CURSOR)
_TIME_ID = re.compile(TIME_ID_CURSOR)


def _refused() -> Unprocessable:
    return Unprocessable("the cursor is not a `next` this API gives", code="invalid_cursor")


def read_seq(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not _SEQ.fullmatch(cursor):
        raise _refused()
    return int(cursor)


def read_id(cursor: str | None) -> str | None:
    if cursor is not None and not _ID.fullmatch(cursor):
        raise _refused()
    return cursor


def read_time_id(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    if not _TIME_ID.fullmatch(cursor):
        raise _refused()
    at, _, key = cursor.partition("_")  # the time holds no "_"; the id may
    return float(at), key


def time_id_cursor(at: float, key: str) -> str:
    return f"{at!r}_{key}"  # repr: the exact float back


def next_cursor(items: list[T], limit: int, key: Callable[[T], str]) -> str | None:
    """The cursor of the page after ``items``: none when this page was not full."""
    return key(items[-1]) if items and len(items) == limit else None

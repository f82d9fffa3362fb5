"""Paging of the API's lists: WAHA's ``limit`` and ``offset``, and wagate's keyset ``cursor`` behind a ``Link``.

Every list is a JSON array. A full page answers ``Link: <...>; rel="next"``: the same request with a ``cursor``
(the sort key of the page's last item, for lists sorted by a unique key) or with the next ``offset`` (lists sorted
by a name). A cursor page costs the same however deep it is and never repeats or skips an item when items are
added meanwhile; an offset page counts from the start again. With both, ``offset`` counts after the cursor. Lists
sorted by a name have no cursor: one given with such a sort is a ``422``.

A cursor is written as text that a pattern describes exactly: every cursor the document allows is a position in
the list, and none carries a value the store cannot compare (a number past BIGINT, an infinity, U+0000). Anything
else is ``422 invalid_cursor``.

=========  ==================================  ===========================================
list       cursor                              example
=========  ==================================  ===========================================
messages   the message's time, ``_``, its seq  ``1712345678.25_1042``
chats      last message time, ``_``, chat id   ``1712345678.25_15550001@s.whatsapp.net``
by id      the id                              ``120363000000000001@g.us``
=========  ==================================  ===========================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from wagate.api.schemas import SQL_INT_MAX
from wagate.errors import Unprocessable

__all__ = [
    "ID_CURSOR",
    "TIME_ID_CURSOR",
    "TIME_SEQ_CURSOR",
    "IdCursor",
    "Limit",
    "Offset",
    "SortOrder",
    "TimeIdCursor",
    "TimeSeqCursor",
    "cursor_query",
    "link_next",
    "read_id",
    "read_time_id",
    "read_time_seq",
    "time_id_cursor",
]

# A time as Python's repr writes it (at most 17 digits each side of the point, a two-digit exponent: always finite).
_TIME = r"-?[0-9]{1,17}(?:\.[0-9]{1,24})?(?:e[+-][0-9]{2})?"
TIME_SEQ_CURSOR = rf"^{_TIME}_[0-9]{{1,18}}$"
TIME_ID_CURSOR = rf"^{_TIME}_[^\x00]{{1,400}}$"
ID_CURSOR = r"^[^\x00]{1,500}$"


def cursor_query(pattern: str) -> Any:
    """A ``cursor`` query parameter whose document gives ``pattern`` (the check is ours, for its clearer answer)."""
    return Query(
        description='wagate\'s keyset paging: the `cursor` of the `Link: rel="next"` of the previous page',
        json_schema_extra={"pattern": pattern},
    )


TimeSeqCursor = Annotated[str | None, cursor_query(TIME_SEQ_CURSOR)]
TimeIdCursor = Annotated[str | None, cursor_query(TIME_ID_CURSOR)]
IdCursor = Annotated[str | None, cursor_query(ID_CURSOR)]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page (at most 500)")]
Offset = Annotated[int | None, Query(ge=0, le=SQL_INT_MAX, description="items to skip from the start")]
SortOrder = Annotated[
    Literal["desc", "asc"] | None,
    Query(alias="sortOrder", description="desc: newest first (Z to A); asc: oldest first (A to Z)"),
]

_TIME_SEQ = re.compile(TIME_SEQ_CURSOR)
_TIME_ID = re.compile(TIME_ID_CURSOR)
_ID = re.compile(ID_CURSOR)


def _refused() -> Unprocessable:
    return Unprocessable("the cursor is not one this API gives", code="invalid_cursor")


def read_time_seq(cursor: str | None) -> tuple[float, int] | None:
    if cursor is None:
        return None
    if not _TIME_SEQ.fullmatch(cursor):
        raise _refused()
    at, _, seq = cursor.partition("_")
    return float(at), int(seq)


def read_time_id(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    if not _TIME_ID.fullmatch(cursor):
        raise _refused()
    at, _, key = cursor.partition("_")  # the time holds no "_"; the id may
    return float(at), key


def read_id(cursor: str | None) -> str | None:
    if cursor is not None and not _ID.fullmatch(cursor):
        raise _refused()
    return cursor


def time_id_cursor(at: float, key: str | int) -> str:
    return f"{at!r}_{key}"  # repr: the exact float back


def link_next(
    request: Request,
    response: Response,
    items: Sequence[Any],
    limit: int,
    *,
    cursor: str | None = None,
    offset: int | None = None,
) -> None:
    """After a full page, ``Link: <this request with the next cursor (or else offset)>; rel="next"``; a relative
    reference, resolved against the request's own URL (RFC 8288), so that it holds behind any proxy."""
    if len(items) < limit:
        return
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "offset")]
    kept.append(("cursor", cursor) if cursor is not None else ("offset", str((offset or 0) + len(items))))
    response.headers["Link"] = f'<{request.url.path}?{urlencode(kept)}>; rel="next"'

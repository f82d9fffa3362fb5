"""Reading messages, in WAHA's shapes: a chat's messages (``GET /api/{session}/chats/{chatId}/messages`` and
``GET /api/messages?session=&chatId=``), one of them (``GET /api/{session}/chats/{chatId}/messages/{messageId}``),
and wagate's own ``GET /api/{session}/messages/{messageId}`` (any chat). Each message is a ``WAMessage``.

Lists take WAHA's ``limit``, ``offset``, ``sortBy``, ``sortOrder``, ``downloadMedia`` and ``filter.*``, and
wagate's keyset ``cursor`` (see ``wagate.api.cursors``). Another tenant's session, chat or message is a 404,
exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from wagate.api.cursors import (
    Limit,
    Offset,
    SortOrder,
    TimeSeqCursor,
    link_next,
    read_time_seq,
    time_id_cursor,
)
from wagate.api.deps import GatewayDep, TenantDep
from wagate.api.routes.sending import MESSAGE_ID
from wagate.api.routes.sessions import find_session
from wagate.api.schemas import ErrorOut, error_answers
from wagate.api.wamessage import MessageReader, WAMessageOut
from wagate.domain.messages import CHAT_ID_PATTERN, Message, MessageStatus, normal_chat_id
from wagate.domain.sessions import Session
from wagate.domain.waha import Ack, ack_of, parse_message_id
from wagate.errors import NotFound, Unprocessable
from wagate.gateway import Gateway

__all__ = [
    "AckName",
    "ChatId",
    "MessageQuery",
    "MessageQueryDep",
    "SessionName",
    "chat_id_of",
    "chat_message",
    "chat_messages",
    "get_message",
    "message_query",
    "messages_by_query",
    "router",
    "statuses_of",
]

router = APIRouter(tags=["messages"], responses=error_answers(401, 403, 404, 422, 503))
SessionName = Annotated[str, Path(description="the session's name", max_length=64)]
ChatId = Annotated[
    str, Path(max_length=64, description="the chat's id", json_schema_extra={"pattern": CHAT_ID_PATTERN})
]
AckName = Literal["ERROR", "PENDING", "SERVER", "DEVICE", "READ", "PLAYED"]
_UNREADABLE: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorOut,
        "description": "the request is malformed, or `message_unreadable`: the message's stored body is damaged",
    }
}


def chat_id_of(value: str) -> str:
    """A chat id in any form the API takes, as the store keeps it; ``422 invalid_chat_id`` otherwise."""
    try:
        return normal_chat_id(value)
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_chat_id") from None


def statuses_of(ack: AckName) -> frozenset[MessageStatus]:
    """The statuses whose WAHA ack is ``ack`` (none is ``PLAYED``: wagate sends no voice that reports it)."""
    return frozenset(status for status in MessageStatus if ack_of(status) is Ack[ack])


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """What a list of messages asks for, from WAHA's query parameters and wagate's."""

    limit: int
    offset: int
    cursor: tuple[float, int] | None
    newest_first: bool
    download_media: bool
    since: float | None
    until: float | None
    from_me: bool | None
    statuses: frozenset[MessageStatus] | None
    sender: str | None


async def message_query(
    limit: Limit = 10,
    offset: Offset = None,
    cursor: TimeSeqCursor = None,
    sort_by: Annotated[
        Literal["timestamp", "messageTimestamp"],
        Query(alias="sortBy", description="both sort by the message's time"),
    ] = "timestamp",
    sort_order: SortOrder = None,
    download_media: Annotated[
        bool, Query(alias="downloadMedia", description="false: `media` is null (`hasMedia` still says)")
    ] = True,
    merge: Annotated[
        bool, Query(description="accepted; no effect yet (wagate does not merge @lid and @c.us chats)")
    ] = True,
    gte: Annotated[
        float | None,
        Query(alias="filter.timestamp.gte", allow_inf_nan=False, description="at or after this time (seconds)"),
    ] = None,
    lte: Annotated[
        float | None,
        Query(alias="filter.timestamp.lte", allow_inf_nan=False, description="at or before this time (seconds)"),
    ] = None,
    from_me: Annotated[bool | None, Query(alias="filter.fromMe", description="only sent, or only received")] = None,
    ack: Annotated[AckName | None, Query(alias="filter.ack", description="only messages at this ack")] = None,
    sender: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description="wagate's: only from this sender",
            json_schema_extra={"pattern": CHAT_ID_PATTERN},
        ),
    ] = None,
) -> MessageQuery:
    del sort_by, merge  # one order (the message's time); no merging yet
    return MessageQuery(
        limit=limit,
        offset=offset or 0,
        cursor=read_time_seq(cursor),
        newest_first=sort_order != "asc",
        download_media=download_media,
        since=gte,
        until=lte,
        from_me=from_me,
        statuses=statuses_of(ack) if ack is not None else None,
        sender=chat_id_of(sender) if sender else None,
    )


MessageQueryDep = Annotated[MessageQuery, Depends(message_query)]


async def _listed(
    request: Request, response: Response, gateway: Gateway, session: Session, chat_id: str, query: MessageQuery
) -> list[WAMessageOut]:
    found = await gateway.store.messages.list_messages(
        session.tenant_id,
        session.id,
        chat_id=chat_id_of(chat_id),
        sender=query.sender,
        since=query.since,
        until=query.until,
        from_me=query.from_me,
        statuses=query.statuses,
        cursor=query.cursor,
        offset=query.offset,
        newest_first=query.newest_first,
        limit=query.limit,
    )
    if found:
        last = found[-1]
        link_next(request, response, found, query.limit, cursor=time_id_cursor(last.timestamp, last.seq))
    return await MessageReader(gateway, session, download_media=query.download_media).many(found)


@router.get("/api/{name}/chats/{chat_id}/messages", summary="A chat's messages, newest first by default")
async def chat_messages(
    name: SessionName,
    chat_id: ChatId,
    query: MessageQueryDep,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    tenant_id: TenantDep,
) -> list[WAMessageOut]:
    session = await find_session(gateway, tenant_id, name)
    return await _listed(request, response, gateway, session, chat_id, query)


@router.get("/api/messages", summary="A chat's messages (WAHA's older route: the session in the query)")
async def messages_by_query(
    chat_id: Annotated[
        str,
        Query(
            alias="chatId", max_length=64, description="the chat's id", json_schema_extra={"pattern": CHAT_ID_PATTERN}
        ),
    ],
    query: MessageQueryDep,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    session: Annotated[str, Query(max_length=64, description="the session's name")] = "default",
) -> list[WAMessageOut]:
    found = await find_session(gateway, tenant_id, session)
    return await _listed(request, response, gateway, found, chat_id, query)


async def _one(gateway: Gateway, session: Session, message: Message | None, wanted: str, media: bool) -> WAMessageOut:
    if message is None:
        raise NotFound(f"no message {wanted!r} in this session", code="message_not_found")
    out = await MessageReader(gateway, session, download_media=media).one(message)
    if out.data.get("unreadable"):  # not a 5xx: reading it again cannot help
        raise Unprocessable(
            f"the stored body of message {wanted!r} is damaged and cannot be read; the chat's messages list it "
            "with its status, marked unreadable",
            code="message_unreadable",
        )
    return out


_DOWNLOAD = Annotated[bool, Query(alias="downloadMedia", description="false: `media` is null")]
_MESSAGE_ID = Annotated[
    str, Path(pattern=MESSAGE_ID, description="WAHA's serialized id (false_11111111111@c.us_AAAA) or WhatsApp's")
]


@router.get("/api/{name}/chats/{chat_id}/messages/{message_id}", summary="One message of a chat", responses=_UNREADABLE)
async def chat_message(
    name: SessionName,
    chat_id: ChatId,
    message_id: _MESSAGE_ID,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    download_media: _DOWNLOAD = True,
    merge: Annotated[bool, Query(description="accepted; no effect yet")] = True,
) -> WAMessageOut:
    session = await find_session(gateway, tenant_id, name)
    chat = chat_id_of(chat_id)
    message = await gateway.store.messages.get(tenant_id, session.id, parse_message_id(message_id).id)
    if message is not None and message.chat_id != chat:
        message = None  # another chat's message is not this chat's
    return await _one(gateway, session, message, message_id, download_media)


@router.get("/api/{name}/messages/{message_id}", summary="One message, in any chat", responses=_UNREADABLE)
async def get_message(
    name: SessionName,
    message_id: _MESSAGE_ID,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    download_media: _DOWNLOAD = True,
) -> WAMessageOut:
    session = await find_session(gateway, tenant_id, name)
    message = await gateway.store.messages.get(tenant_id, session.id, parse_message_id(message_id).id)
    return await _one(gateway, session, message, message_id, download_media)

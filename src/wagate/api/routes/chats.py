"""A session's chats, in WAHA's shapes: ``GET /api/{session}/chats`` (an array, with WAHA's ``sortBy``,
``sortOrder``, ``limit`` and ``offset``, and wagate's ``cursor``) and the overview WAHA's chat lists show
(``GET|POST /api/{session}/chats/overview``: each chat with its last message as a ``WAMessage``).

A chat's ``name`` is its group's subject, or its contact's name, or the push name its sender gave themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from wagate.api.cursors import (
    Limit,
    Offset,
    SortOrder,
    TimeIdCursor,
    link_next,
    read_time_id,
    time_id_cursor,
)
from wagate.api.deps import GatewayDep, TenantDep
from wagate.api.routes.messages import SessionName, chat_id_of
from wagate.api.routes.sessions import find_session
from wagate.api.schemas import SQL_INT_MAX, error_answers
from wagate.api.wamessage import MessageReader
from wagate.domain.messages import CHAT_ID_PATTERN, Chat
from wagate.domain.sessions import Session
from wagate.domain.waha import public_jid
from wagate.errors import Unprocessable
from wagate.gateway import Gateway
from wagate.store.contracts.directory import ChatOrder

__all__ = [
    "ChatOut",
    "ChatSummaryOut",
    "OverviewFilter",
    "OverviewPaging",
    "OverviewRequest",
    "chats_overview",
    "chats_overview_by_body",
    "list_chats",
    "router",
]

router = APIRouter(tags=["chats"], responses=error_answers(401, 403, 404, 422, 503))
_ChatIdItem = Annotated[str, StringConstraints(max_length=64, pattern=CHAT_ID_PATTERN)]
_MERGE = "accepted; no effect yet (wagate does not merge @lid and @c.us chats)"
_ORDERS = {"conversationTimestamp": ChatOrder.RECENT, "id": ChatOrder.ID, "name": ChatOrder.NAME}


class ChatOut(BaseModel):
    id: str = Field(description="as WAHA writes it: N@c.us, ...@g.us, ...@lid")
    name: str | None
    isGroup: bool
    conversationTimestamp: int = Field(description="the time of the chat's last message (seconds)")
    messages: int = Field(description="wagate's: the messages the gateway stored in this chat")

    @classmethod
    def of(cls, chat: Chat) -> ChatOut:
        return cls(
            id=public_jid(chat.id),
            name=chat.name,
            isGroup=chat.is_group,
            conversationTimestamp=int(chat.last_message_at),
            messages=chat.messages,
        )


class ChatSummaryOut(BaseModel):
    """WAHA's ``ChatSummary``."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str | None
    picture: str | None = Field(
        description="empty: wagate does not fetch pictures yet (an empty string, not null, which some WAHA SDKs refuse)"
    )
    lastMessage: dict[str, Any] = Field(description="the last message, a WAMessage; empty when no longer stored")
    chat: dict[str, Any] = Field(alias="_chat", description="the chat as `GET /api/{session}/chats` gives it")


class OverviewPaging(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merge: bool = Field(True, description=_MERGE)
    limit: int = Field(20, ge=1, le=500)
    offset: int | None = Field(None, ge=0, le=SQL_INT_MAX)


class OverviewFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[_ChatIdItem] | None = Field(None, max_length=500, description="only these chats")


class OverviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pagination: OverviewPaging
    filter: OverviewFilter | None = None


def _cursor(order: ChatOrder, cursor: str | None) -> tuple[float, str] | None:
    if cursor is not None and order is not ChatOrder.RECENT:
        raise Unprocessable("chats sorted by id or name page by offset, not by cursor", code="invalid_cursor")
    return read_time_id(cursor)


@router.get("/api/{name}/chats", summary="The session's chats, most recent first by default")
async def list_chats(
    name: SessionName,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    sort_by: Annotated[
        Literal["conversationTimestamp", "id", "name"] | None,
        Query(alias="sortBy", description="conversationTimestamp (the default): the last message's time"),
    ] = None,
    sort_order: SortOrder = None,
    merge: Annotated[bool, Query(description=_MERGE)] = True,
    limit: Limit = 100,
    offset: Offset = None,
    cursor: TimeIdCursor = None,
) -> list[ChatOut]:
    del merge
    session = await find_session(gateway, tenant_id, name)
    order = _ORDERS[sort_by or "conversationTimestamp"]
    descending = sort_order == "desc" if sort_order else order is ChatOrder.RECENT
    start = offset or 0
    chats = await gateway.store.directory.list_chats(
        tenant_id,
        session.id,
        limit=limit,
        offset=start,
        order=order,
        descending=descending,
        cursor=_cursor(order, cursor),
    )
    if chats:
        last = chats[-1]
        keyset = time_id_cursor(last.last_message_at, last.id) if order is ChatOrder.RECENT else None
        link_next(request, response, chats, limit, cursor=keyset, offset=start)
    return [ChatOut.of(c) for c in chats]


async def _overview(
    gateway: Gateway, session: Session, limit: int, offset: int, ids: Sequence[str] | None
) -> list[ChatSummaryOut]:
    wanted = [chat_id_of(i) for i in ids] if ids is not None else None
    chats = await gateway.store.directory.list_chats(
        session.tenant_id, session.id, limit=limit, offset=offset, ids=wanted
    )
    last_ids = [c.last_message_id for c in chats if c.last_message_id]
    stored = await gateway.store.messages.get_many(session.tenant_id, session.id, last_ids)
    shown = await MessageReader(gateway, session, download_media=False).many(stored.values())
    by_id = {m.data["id"]: m.model_dump(by_alias=True) for m in shown}
    return [
        ChatSummaryOut(
            id=public_jid(c.id),
            name=c.name,
            picture="",
            lastMessage=by_id.get(c.last_message_id or "", {}),
            chat=ChatOut.of(c).model_dump(),
        )
        for c in chats
    ]


@router.get("/api/{name}/chats/overview", summary="The chats with their last message, most recent first")
async def chats_overview(
    name: SessionName,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    merge: Annotated[bool, Query(description=_MERGE)] = True,
    limit: Limit = 20,
    offset: Offset = None,
    ids: Annotated[list[_ChatIdItem] | None, Query(max_length=500, description="only these chats")] = None,
) -> list[ChatSummaryOut]:
    del merge
    session = await find_session(gateway, tenant_id, name)
    return await _overview(gateway, session, limit, offset or 0, ids)


@router.post(
    "/api/{name}/chats/overview",
    status_code=status.HTTP_201_CREATED,
    summary="The chats with their last message (the query in the body, for long lists of ids)",
    responses=error_answers(400, 413),
)
async def chats_overview_by_body(
    name: SessionName, body: OverviewRequest, gateway: GatewayDep, tenant_id: TenantDep
) -> list[ChatSummaryOut]:
    session = await find_session(gateway, tenant_id, name)
    paging, ids = body.pagination, body.filter.ids if body.filter else None
    return await _overview(gateway, session, paging.limit, paging.offset or 0, ids)

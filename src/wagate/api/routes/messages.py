"""Messaging, in WAHA's shapes: ``POST /api/sendText|sendImage|sendFile|sendVoice`` and the session's chats,
messages, contacts and groups (``GET /api/{session}/...``), paged by an opaque cursor.

Another tenant's session, chat or message is a 404, exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from wagate.api.cursors import (
    IdCursor,
    SeqCursor,
    TimeIdCursor,
    next_cursor,
    read_id,
    read_seq,
    read_time_id,
    time_id_cursor,
)
from wagate.api.deps import GatewayDep, SupervisorDep, TenantDep
from wagate.api.routes.sessions import find_session
from wagate.api.schemas import HTTP_URL, NUL_CHECK, NUL_FREE, ErrorOut, NulFree, error_answers
from wagate.domain.messages import CHAT_ID_PATTERN, Message, MessageKind, normal_chat_id
from wagate.errors import NotFound, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.services.sending import MediaSource, SendingService, SendRequest, fingerprint
from wagate.supervisor.supervisor import Supervisor

__all__ = [
    "BASE64",
    "MESSAGE_ID",
    "ChatOut",
    "ContactOut",
    "FileIn",
    "GroupOut",
    "IdempotencyKey",
    "Limit",
    "MessageOut",
    "Page",
    "SendMedia",
    "SendText",
    "SendVoice",
    "SessionName",
    "chat_messages",
    "get_message",
    "list_chats",
    "list_contacts",
    "list_groups",
    "router",
    "send_text",
    "send_voice",
]

router = APIRouter(tags=["messages"], responses=error_answers(401, 403, 404, 422, 503))
SessionName = Annotated[str, Path(description="the session's name", max_length=64)]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="a retried request with the same key queues nothing new and answers the first message",
    ),
]
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"  # one byte or more
MESSAGE_ID = r"^[\x21-\x7e]{1,128}$"  # WhatsApp's ids, and ours, are printable ASCII
_CHAT_ID: dict[str, Any] = {"pattern": CHAT_ID_PATTERN}
_REF = Field(None, max_length=128, pattern=MESSAGE_ID, description="id of the message this one replies to")


class _Send(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    session: str = Field(max_length=64, description="the session's name")
    chat_id: str = Field(
        alias="chatId",
        max_length=64,
        description="+15550001, 15550001@c.us or ...@g.us",
        json_schema_extra={"pattern": CHAT_ID_PATTERN},
    )
    reply_to: str | None = _REF


class SendText(_Send):
    text: NulFree = Field(min_length=1, max_length=65536)


class FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mimetype: str | None = Field(None, max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+(;[^\x00-\x1f\x7f]*)?$")
    filename: str | None = Field(None, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")
    url: Annotated[str, StringConstraints(max_length=2048), NUL_CHECK] | None = Field(
        None, description="fetched by wagate itself (limits, SSRF guard)", json_schema_extra={"pattern": HTTP_URL}
    )
    data: str | None = Field(
        None, description="the file's bytes in base64 (not empty)", json_schema_extra={"pattern": BASE64}
    )


class SendMedia(_Send):
    file: FileIn
    caption: Annotated[str, StringConstraints(max_length=4096), NUL_CHECK] | None = Field(
        None, json_schema_extra={"pattern": NUL_FREE}
    )


class SendVoice(_Send):
    file: FileIn


class MessageOut(BaseModel):
    id: str
    session: str
    chatId: str
    sender: str = Field(serialization_alias="from")
    fromMe: bool
    type: str
    status: str
    timestamp: float
    body: str | None
    caption: str | None = None
    replyTo: str | None = None
    media: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    unreadable: bool = Field(
        False,
        description="the stored body is damaged and cannot be read: `body`, `caption`, `replyTo` and `media` are null",
    )


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(description="cursor of the next page; null on the last one")


class ChatOut(BaseModel):
    id: str
    name: str | None
    isGroup: bool
    lastMessageId: str | None
    lastMessageAt: float
    messages: int


class ContactOut(BaseModel):
    id: str
    name: str | None
    pushName: str | None


class GroupOut(BaseModel):
    id: str
    subject: str | None
    participants: list[str]


# sending -----------------------------------------------------------------------------------------------------------


async def _queue(
    request: Request,
    response: Response,
    gateway: Gateway,
    supervisor: Supervisor | None,
    tenant_id: TenantId,
    body: _Send,
    send: SendRequest,
    idempotency_key: str | None,
) -> MessageOut:
    session = await find_session(gateway, tenant_id, body.session)
    digest = fingerprint(request.url.path, body.model_dump(mode="json"))
    message, created = await SendingService(gateway, gateway.media).queue(
        session, send, idempotency_key=idempotency_key, fingerprint=digest
    )
    if supervisor is not None and created:
        supervisor.nudge(session.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return await _out(gateway, session.name, message)


def _media(file: FileIn) -> MediaSource:
    return MediaSource(url=file.url, data=file.data, mimetype=file.mimetype, filename=file.filename)


@router.post(
    "/api/sendText",
    status_code=status.HTTP_201_CREATED,
    summary="Queue a text message",
    responses=error_answers(400, 409, 413, 429),
)
async def send_text(
    body: SendText,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> MessageOut:
    send = SendRequest(body.chat_id, MessageKind.TEXT, text=body.text, reply_to=body.reply_to)
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


def _media_route(kind: MessageKind) -> Callable[..., Awaitable[MessageOut]]:
    """``sendImage`` and ``sendFile``: the same request, another kind of message."""

    async def send_media(
        body: SendMedia,
        request: Request,
        response: Response,
        gateway: GatewayDep,
        supervisor: SupervisorDep,
        tenant_id: TenantDep,
        idempotency_key: IdempotencyKey = None,
    ) -> MessageOut:
        send = SendRequest(body.chat_id, kind, caption=body.caption, reply_to=body.reply_to, media=_media(body.file))
        return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)

    send_media.__name__ = f"send_{kind.value}"
    return send_media


router.post(
    "/api/sendImage",
    status_code=status.HTTP_201_CREATED,
    summary="Queue an image (caption optional)",
    responses=error_answers(400, 409, 413, 429),
)(_media_route(MessageKind.IMAGE))
router.post(
    "/api/sendFile",
    status_code=status.HTTP_201_CREATED,
    summary="Queue a document (caption optional)",
    responses=error_answers(400, 409, 413, 429),
)(_media_route(MessageKind.FILE))


@router.post(
    "/api/sendVoice",
    status_code=status.HTTP_201_CREATED,
    summary="Queue a voice message (audio/*)",
    responses=error_answers(400, 409, 413, 429),
)
async def send_voice(
    body: SendVoice,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> MessageOut:
    send = SendRequest(body.chat_id, MessageKind.VOICE, reply_to=body.reply_to, media=_media(body.file))
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


# reading -----------------------------------------------------------------------------------------------------------


async def _out(gateway: Gateway, session_name: str, message: Message) -> MessageOut:
    """The message as the API shows it; one whose stored body does not open is marked ``unreadable``, without it."""
    body = await gateway.bodies.readable_body(message.tenant_id, message.session_id, message.id, message.body)
    opened = body if body is not None else {}
    return MessageOut(
        id=message.id,
        session=session_name,
        chatId=message.chat_id,
        sender=message.sender,
        fromMe=message.from_me,
        type=message.kind.value,
        status=message.status.value,
        timestamp=message.timestamp,
        body=opened.get("text"),
        caption=opened.get("caption"),
        replyTo=opened.get("replyTo"),
        media=opened.get("media"),
        error=message.error,
        attempts=message.attempts,
        unreadable=body is None,
    )


def _chat(value: str) -> str:
    try:
        return normal_chat_id(value)
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_chat_id") from None


@router.get(
    "/api/{name}/messages/{message_id}",
    summary="One message, with its status",
    responses={
        422: {
            "model": ErrorOut,
            "description": "the request is malformed, or `message_unreadable`: the message's stored body is damaged",
        }
    },
)
async def get_message(
    name: SessionName,
    message_id: Annotated[str, Path(pattern=MESSAGE_ID, description="the message's id")],
    gateway: GatewayDep,
    tenant_id: TenantDep,
) -> MessageOut:
    session = await find_session(gateway, tenant_id, name)
    message = await gateway.store.messages.get(tenant_id, session.id, message_id)
    if message is None:
        raise NotFound(f"no message {message_id!r} in this session", code="message_not_found")
    out = await _out(gateway, session.name, message)
    if out.unreadable:  # not a 5xx: reading it again cannot help
        raise Unprocessable(
            f"the stored body of message {message_id!r} is damaged and cannot be read; the chat's messages list it "
            "with its status, marked unreadable",
            code="message_unreadable",
        )
    return out


@router.get("/api/{name}/chats/{chat_id}/messages", summary="A chat's messages, newest first by default")
async def chat_messages(
    name: SessionName,
    chat_id: Annotated[str, Path(max_length=64, description="the chat's id", json_schema_extra=_CHAT_ID)],
    gateway: GatewayDep,
    tenant_id: TenantDep,
    limit: Limit = 100,
    cursor: SeqCursor = None,
    since: Annotated[
        float | None, Query(allow_inf_nan=False, description="messages at or after this time (epoch seconds)")
    ] = None,
    until: Annotated[
        float | None, Query(allow_inf_nan=False, description="messages before this time (epoch seconds)")
    ] = None,
    sender: Annotated[
        str | None, Query(alias="from", max_length=64, description="only from this sender", json_schema_extra=_CHAT_ID)
    ] = None,
    order: Annotated[Literal["desc", "asc"], Query(description="desc: newest first")] = "desc",
) -> Page[MessageOut]:
    session = await find_session(gateway, tenant_id, name)
    after = read_seq(cursor)
    messages = await gateway.store.messages.list_messages(
        tenant_id,
        session.id,
        chat_id=_chat(chat_id),
        sender=_chat(sender) if sender else None,
        since=since,
        until=until,
        cursor=after,
        newest_first=order == "desc",
        limit=limit,
    )
    items = [await _out(gateway, session.name, m) for m in messages]
    return Page[MessageOut](items=items, next=next_cursor(messages, limit, lambda m: str(m.seq)))


@router.get("/api/{name}/chats", summary="The session's chats, most recent first")
async def list_chats(
    name: SessionName, gateway: GatewayDep, tenant_id: TenantDep, limit: Limit = 100, cursor: TimeIdCursor = None
) -> Page[ChatOut]:
    session = await find_session(gateway, tenant_id, name)
    after = read_time_id(cursor)
    chats = await gateway.store.directory.list_chats(tenant_id, session.id, limit=limit, cursor=after)
    return Page[ChatOut](
        items=[
            ChatOut(
                id=c.id,
                name=c.name,
                isGroup=c.is_group,
                lastMessageId=c.last_message_id,
                lastMessageAt=c.last_message_at,
                messages=c.messages,
            )
            for c in chats
        ],
        next=next_cursor(chats, limit, lambda c: time_id_cursor(c.last_message_at, c.id)),
    )


@router.get("/api/{name}/contacts", summary="The session's contacts, by id")
async def list_contacts(
    name: SessionName, gateway: GatewayDep, tenant_id: TenantDep, limit: Limit = 100, cursor: IdCursor = None
) -> Page[ContactOut]:
    session = await find_session(gateway, tenant_id, name)
    found = await gateway.store.directory.list_contacts(tenant_id, session.id, limit=limit, cursor=read_id(cursor))
    items = [ContactOut(id=c.id, name=c.name, pushName=c.push_name) for c in found]
    return Page[ContactOut](items=items, next=next_cursor(found, limit, lambda c: c.id))


@router.get("/api/{name}/groups", summary="The groups the session's account is in, by id")
async def list_groups(
    name: SessionName, gateway: GatewayDep, tenant_id: TenantDep, limit: Limit = 100, cursor: IdCursor = None
) -> Page[GroupOut]:
    session = await find_session(gateway, tenant_id, name)
    found = await gateway.store.directory.list_groups(tenant_id, session.id, limit=limit, cursor=read_id(cursor))
    items = [GroupOut(id=g.id, subject=g.subject, participants=g.participants) for g in found]
    return Page[GroupOut](items=items, next=next_cursor(found, limit, lambda g: g.id))

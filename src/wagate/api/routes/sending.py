"""Sending, in WAHA's shapes: ``POST /api/sendText``, ``sendImage``, ``sendFile``, ``sendVoice`` and ``sendVideo``
queue a message and answer it as a ``WAMessage`` (``201``) once it is committed to the session's outbound queue
(``routes.sharing`` sends places, contact cards, polls and reactions the same way).

Every field of WAHA's request schemas is taken. Some have no effect yet (``linkPreview``,
``linkPreviewHighQuality``, ``mentions``; ``convert`` only checks that the audio is OGG/Opus, or the video MP4,
already): the "Fields accepted with no effect yet" section of docs/messages.md lists them. A retried request with
the same ``Idempotency-Key`` queues nothing new and answers the first message (``Idempotent-Replayed: true``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from wagate.api.deps import GatewayDep, SupervisorDep, TenantDep
from wagate.api.routes.sessions import SessionName, find_session
from wagate.api.schemas import HTTP_URL, NUL_CHECK, NUL_FREE, NulFree, error_answers
from wagate.api.wamessage import MessageReader, WAMessageOut
from wagate.domain.content import Text
from wagate.domain.messages import CHAT_ID_PATTERN, MessageKind, new_message_id
from wagate.domain.sessions import Session
from wagate.domain.waha import parse_message_id
from wagate.services.sending import MediaRequest, MediaSource, SendingService, SendRequest, fingerprint

__all__ = [
    "BASE64",
    "MESSAGE_ID",
    "NEW_MESSAGE_ID",
    "SENT",
    "FileIn",
    "IdempotencyKey",
    "NewMessageIdOut",
    "Outbox",
    "OutboxDep",
    "SendBase",
    "SendMedia",
    "SendText",
    "SendVideo",
    "SendVoice",
    "SessionBody",
    "new_message_id_for",
    "router",
    "send_text",
    "send_video",
    "send_voice",
]

router = APIRouter(tags=["messages"], responses=error_answers(401, 403, 404, 422, 503))
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="a retried request with the same key queues nothing new and answers the first message",
    ),
]
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"  # one byte or more
MESSAGE_ID = r"^[\x21-\x7e]{1,128}$"  # WhatsApp's ids, WAHA's serialized ones, and ours are printable ASCII
NEW_MESSAGE_ID = r"^[0-9A-Za-z]{1,64}$"  # as WhatsApp's clients make them: no "_", which serialized ids split at


class SessionBody(BaseModel):
    """A request that names its session in the body, as WAHA's sends do."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    session: str = Field("default", max_length=64, description="the session's name")


class SendBase(SessionBody):
    chat_id: str = Field(
        alias="chatId",
        max_length=64,
        description="+15550001, 15550001@c.us or ...@g.us",
        json_schema_extra={"pattern": CHAT_ID_PATTERN},
    )
    reply_to: str | None = Field(
        None,
        max_length=128,
        pattern=MESSAGE_ID,
        description="the message this one replies to: WAHA's serialized id (false_11111111111@c.us_AAAA) or bare",
    )

    def quoted(self) -> str | None:
        """WhatsApp's bare id of the quoted message."""
        return parse_message_id(self.reply_to).id if self.reply_to else None


class SendText(SendBase):
    text: NulFree = Field(min_length=1, max_length=65536)
    id: str | None = Field(
        None,
        max_length=64,
        pattern=NEW_MESSAGE_ID,
        description="the message's id, made by the caller (letters and digits); a new one when absent",
    )
    link_preview: bool = Field(True, alias="linkPreview", description="accepted; no effect yet (no preview sent)")
    link_preview_high_quality: bool = Field(
        False, alias="linkPreviewHighQuality", description="accepted; no effect yet (no preview sent)"
    )
    mentions: list[Annotated[str, StringConstraints(max_length=64, pattern=CHAT_ID_PATTERN)]] | None = Field(
        None, max_length=1024, description="ids mentioned (older WAHA versions); checked, no effect yet"
    )


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


class SendMedia(SendBase):
    file: FileIn
    caption: Annotated[str, StringConstraints(max_length=4096), NUL_CHECK] | None = Field(
        None, json_schema_extra={"pattern": NUL_FREE}
    )


class SendVoice(SendBase):
    file: FileIn
    convert: bool = Field(
        False,
        description="wagate does not convert audio yet: with true, audio that is not OGG/Opus is refused "
        "(422 conversion_unsupported); with false, the file is sent as it is",
    )


class Outbox:
    """A send request's way to the session's outbound queue: what every send route needs besides its body."""

    def __init__(
        self,
        request: Request,
        response: Response,
        gateway: GatewayDep,
        supervisor: SupervisorDep,
        tenant_id: TenantDep,
        idempotency_key: IdempotencyKey = None,
    ) -> None:
        self.request, self.response = request, response
        self.gateway, self.supervisor, self.tenant_id = gateway, supervisor, tenant_id
        self.idempotency_key = idempotency_key

    async def session(self, name: str) -> Session:
        return await find_session(self.gateway, self.tenant_id, name)

    async def queue(self, body: SessionBody, send: SendRequest) -> WAMessageOut:
        """Queue ``send`` for ``body``'s session (once per ``Idempotency-Key``), answered as a ``WAMessage``."""
        gateway = self.gateway
        session = await self.session(body.session)
        digest = fingerprint(self.request.url.path, body.model_dump(mode="json"))
        message, created = await SendingService(gateway, gateway.media).queue(
            session, send, idempotency_key=self.idempotency_key, fingerprint=digest
        )
        if self.supervisor is not None and created:
            self.supervisor.nudge(session.id)
        if not created:
            self.response.headers["Idempotent-Replayed"] = "true"
        return await MessageReader(gateway, session).one(message)


OutboxDep = Annotated[Outbox, Depends()]


def _media(file: FileIn) -> MediaSource:
    return MediaSource(url=file.url, data=file.data, mimetype=file.mimetype, filename=file.filename)


SENT: dict[str, Any] = {
    "status_code": status.HTTP_201_CREATED,
    "responses": error_answers(400, 409, 413, 429),
}


@router.post("/api/sendText", summary="Queue a text message", **SENT)
async def send_text(body: SendText, outbox: OutboxDep) -> WAMessageOut:
    send = SendRequest(body.chat_id, Text(body.text), reply_to=body.quoted(), message_id=body.id)
    return await outbox.queue(body, send)


def _media_route(kind: MessageKind) -> Callable[..., Awaitable[WAMessageOut]]:
    """``sendImage`` and ``sendFile``: the same request, another kind of message."""

    async def send_media(
        body: SendMedia,
        outbox: OutboxDep,
    ) -> WAMessageOut:
        media = MediaRequest(kind, _media(body.file), caption=body.caption)
        send = SendRequest(body.chat_id, media, reply_to=body.quoted())
        return await outbox.queue(body, send)

    send_media.__name__ = f"send_{kind.value}"
    return send_media


router.post("/api/sendImage", summary="Queue an image (caption optional)", **SENT)(_media_route(MessageKind.IMAGE))
router.post("/api/sendFile", summary="Queue a document (caption optional)", **SENT)(_media_route(MessageKind.FILE))


@router.post("/api/sendVoice", summary="Queue a voice message (audio/*, OGG/Opus to play as one)", **SENT)
async def send_voice(body: SendVoice, outbox: OutboxDep) -> WAMessageOut:
    media = MediaRequest(MessageKind.VOICE, _media(body.file), convert=body.convert)
    send = SendRequest(body.chat_id, media, reply_to=body.quoted())
    return await outbox.queue(body, send)


class SendVideo(SendMedia):
    as_note: bool = Field(False, alias="asNote", description="a video note: a round video, played inline")
    convert: bool = Field(
        False,
        description="wagate does not convert video yet: with true, a video that is not MP4 is refused "
        "(422 conversion_unsupported); with false, the file is sent as it is",
    )


@router.post("/api/sendVideo", summary="Queue a video (video/*, MP4 to play inline), or a video note", **SENT)
async def send_video(body: SendVideo, outbox: OutboxDep) -> WAMessageOut:
    media = MediaRequest(
        MessageKind.VIDEO, _media(body.file), caption=body.caption, convert=body.convert, as_note=body.as_note
    )
    send = SendRequest(body.chat_id, media, reply_to=body.quoted())
    return await outbox.queue(body, send)


class NewMessageIdOut(BaseModel):
    id: str = Field(description="a new message id, to pass as `id` on a send (WAHA's NewMessageIDResponse)")


@router.get("/api/{name}/new-message-id", summary="Make a message id before sending")
async def new_message_id_for(name: SessionName, gateway: GatewayDep, tenant_id: TenantDep) -> NewMessageIdOut:
    """An id in the form WhatsApp's clients make, for a caller that wants to know a message's id before it is sent
    (to store it first, or to retry a send without a second message): pass it as ``id`` to ``sendText``."""
    await find_session(gateway, tenant_id, name)
    return NewMessageIdOut(id=new_message_id())

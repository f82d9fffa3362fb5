"""Sending, in WAHA's shapes: ``POST /api/sendText``, ``sendImage``, ``sendFile``, ``sendVoice``, ``sendVideo``,
``sendLocation``, ``sendContactVcard`` and ``sendPoll`` queue a message and answer it as a ``WAMessage`` (``201``)
once it is committed to the session's outbound queue.

Every field of WAHA's request schemas is taken. Some have no effect yet (``linkPreview``,
``linkPreviewHighQuality``, ``mentions``; ``convert`` only checks that the audio is OGG/Opus, or the video MP4,
already): the "Fields accepted with no effect yet" section of docs/messages.md lists them. A retried request with
the same ``Idempotency-Key`` queues nothing new and answers the first message (``Idempotent-Replayed: true``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from wagate.api.deps import GatewayDep, SupervisorDep, TenantDep
from wagate.api.routes.sessions import SessionName, find_session
from wagate.api.schemas import HTTP_URL, NUL_CHECK, NUL_FREE, NulFree, error_answers
from wagate.api.wamessage import MessageReader, WAMessageOut
from wagate.domain.content import ContactCard, Contacts, Location, Poll, Text
from wagate.domain.messages import CHAT_ID_PATTERN, MessageKind, new_message_id
from wagate.domain.waha import parse_message_id
from wagate.errors import Unprocessable
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.services.sending import MediaRequest, MediaSource, SendingService, SendRequest, fingerprint
from wagate.supervisor.supervisor import Supervisor

__all__ = [
    "BASE64",
    "MESSAGE_ID",
    "NEW_MESSAGE_ID",
    "FileIn",
    "IdempotencyKey",
    "NewMessageIdOut",
    "PollIn",
    "SendContactVcard",
    "SendLocation",
    "SendMedia",
    "SendPoll",
    "SendText",
    "SendVideo",
    "SendVoice",
    "VCardIn",
    "new_message_id_for",
    "router",
    "send_contact_vcard",
    "send_location",
    "send_poll",
    "send_text",
    "send_video",
    "send_voice",
    "vcard_name",
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


class _Send(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    session: str = Field("default", max_length=64, description="the session's name")
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


class SendText(_Send):
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


class SendMedia(_Send):
    file: FileIn
    caption: Annotated[str, StringConstraints(max_length=4096), NUL_CHECK] | None = Field(
        None, json_schema_extra={"pattern": NUL_FREE}
    )


class SendVoice(_Send):
    file: FileIn
    convert: bool = Field(
        False,
        description="wagate does not convert audio yet: with true, audio that is not OGG/Opus is refused "
        "(422 conversion_unsupported); with false, the file is sent as it is",
    )


async def _queue(
    request: Request,
    response: Response,
    gateway: Gateway,
    supervisor: Supervisor | None,
    tenant_id: TenantId,
    body: _Send,
    send: SendRequest,
    idempotency_key: str | None,
) -> WAMessageOut:
    session = await find_session(gateway, tenant_id, body.session)
    digest = fingerprint(request.url.path, body.model_dump(mode="json"))
    message, created = await SendingService(gateway, gateway.media).queue(
        session, send, idempotency_key=idempotency_key, fingerprint=digest
    )
    if supervisor is not None and created:
        supervisor.nudge(session.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return await MessageReader(gateway, session).one(message)


def _media(file: FileIn) -> MediaSource:
    return MediaSource(url=file.url, data=file.data, mimetype=file.mimetype, filename=file.filename)


_SENT: dict[str, Any] = {
    "status_code": status.HTTP_201_CREATED,
    "responses": error_answers(400, 409, 413, 429),
}


@router.post("/api/sendText", summary="Queue a text message", **_SENT)
async def send_text(
    body: SendText,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> WAMessageOut:
    send = SendRequest(body.chat_id, Text(body.text), reply_to=body.quoted(), message_id=body.id)
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


def _media_route(kind: MessageKind) -> Callable[..., Awaitable[WAMessageOut]]:
    """``sendImage`` and ``sendFile``: the same request, another kind of message."""

    async def send_media(
        body: SendMedia,
        request: Request,
        response: Response,
        gateway: GatewayDep,
        supervisor: SupervisorDep,
        tenant_id: TenantDep,
        idempotency_key: IdempotencyKey = None,
    ) -> WAMessageOut:
        media = MediaRequest(kind, _media(body.file), caption=body.caption)
        send = SendRequest(body.chat_id, media, reply_to=body.quoted())
        return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)

    send_media.__name__ = f"send_{kind.value}"
    return send_media


router.post("/api/sendImage", summary="Queue an image (caption optional)", **_SENT)(_media_route(MessageKind.IMAGE))
router.post("/api/sendFile", summary="Queue a document (caption optional)", **_SENT)(_media_route(MessageKind.FILE))


@router.post("/api/sendVoice", summary="Queue a voice message (audio/*, OGG/Opus to play as one)", **_SENT)
async def send_voice(
    body: SendVoice,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> WAMessageOut:
    media = MediaRequest(MessageKind.VOICE, _media(body.file), convert=body.convert)
    send = SendRequest(body.chat_id, media, reply_to=body.quoted())
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


class SendVideo(SendMedia):
    as_note: bool = Field(False, alias="asNote", description="a video note: a round video, played inline")
    convert: bool = Field(
        False,
        description="wagate does not convert video yet: with true, a video that is not MP4 is refused "
        "(422 conversion_unsupported); with false, the file is sent as it is",
    )


@router.post("/api/sendVideo", summary="Queue a video (video/*, MP4 to play inline), or a video note", **_SENT)
async def send_video(
    body: SendVideo,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> WAMessageOut:
    media = MediaRequest(
        MessageKind.VIDEO, _media(body.file), caption=body.caption, convert=body.convert, as_note=body.as_note
    )
    send = SendRequest(body.chat_id, media, reply_to=body.quoted())
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


_SHORT = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _SendMade(_Send):
    """A send whose message id the caller may make (``GET /api/{session}/new-message-id``)."""

    id: str | None = Field(
        None, max_length=64, pattern=NEW_MESSAGE_ID, description="the message's id; a new one when absent"
    )


class SendLocation(_SendMade):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    title: _SHORT | None = Field(None, description="the place's name, shown on the map")


@router.post("/api/sendLocation", summary="Queue a location", **_SENT)
async def send_location(
    body: SendLocation,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> WAMessageOut:
    place = Location(body.latitude, body.longitude, body.title)
    send = SendRequest(body.chat_id, place, reply_to=body.quoted(), message_id=body.id)
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


_VCARD = Annotated[str, StringConstraints(min_length=1, max_length=8192), NUL_CHECK]


class VCardIn(BaseModel):
    """A contact as a whole vCard, or as its parts (a vCard 3.0 is made of them)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vcard: _VCARD | None = Field(None, description="a whole vCard (BEGIN:VCARD ... END:VCARD); its FN names it")
    full_name: _SHORT | None = Field(None, alias="fullName")
    organization: _SHORT | None = None
    phone_number: str | None = Field(None, alias="phoneNumber", max_length=32, pattern=r"^\+?[0-9 ()./-]{3,31}$")
    whatsapp_id: str | None = Field(
        None, alias="whatsappId", pattern=r"^[1-9][0-9]{5,14}$", description="the number on WhatsApp: digits only"
    )

    def card(self) -> ContactCard:
        """The contact as WhatsApp sends it; ``ValueError`` when it names no one."""
        if self.vcard is not None:
            return ContactCard(vcard_name(self.vcard), self.vcard)
        if self.full_name is None or self.phone_number is None:
            raise ValueError("a contact is a vcard, or at least its fullName and phoneNumber")
        lines = ["BEGIN:VCARD", "VERSION:3.0", f"FN:{_escaped(self.full_name)}"]
        if self.organization:
            lines.append(f"ORG:{_escaped(self.organization)};")
        waid = f";waid={self.whatsapp_id}" if self.whatsapp_id else ""
        lines += [f"TEL;type=CELL;type=VOICE{waid}:{self.phone_number}", "END:VCARD"]
        return ContactCard(self.full_name, "\n".join(lines))


def vcard_name(vcard: str) -> str:
    """The name (``FN``) of a vCard; ``ValueError`` when it is not one, or names no one."""
    lines = [line.strip() for line in vcard.strip().splitlines()]
    if not lines or lines[0].upper() != "BEGIN:VCARD" or lines[-1].upper() != "END:VCARD":
        raise ValueError("a vcard begins with BEGIN:VCARD and ends with END:VCARD")
    for line in lines:
        field, _, value = line.partition(":")
        if field.split(";")[0].upper() == "FN" and value.strip():
            return value.strip().replace("\\,", ",").replace("\\;", ";")
    raise ValueError("the vcard has no FN (the name WhatsApp shows on the card)")


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")


class SendContactVcard(_SendMade):
    contacts: list[VCardIn] = Field(min_length=1, max_length=32)


@router.post("/api/sendContactVcard", summary="Queue one contact card or several", **_SENT)
async def send_contact_vcard(
    body: SendContactVcard,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> WAMessageOut:
    try:
        cards = Contacts(tuple(contact.card() for contact in body.contacts))
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_vcard") from None
    send = SendRequest(body.chat_id, cards, reply_to=body.quoted(), message_id=body.id)
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


class PollIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: _SHORT = Field(description="the question")
    options: list[Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]] = (
        Field(min_length=2, max_length=12, description="2 to 12 different answers")
    )
    multiple_answers: bool = Field(False, alias="multipleAnswers", description="a voter may pick several answers")


class SendPoll(_SendMade):
    poll: PollIn


@router.post("/api/sendPoll", summary="Queue a poll", **_SENT)
async def send_poll(
    body: SendPoll,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> WAMessageOut:
    options = tuple(body.poll.options)
    if len(set(options)) != len(options):
        raise Unprocessable("a poll's options are all different", code="invalid_poll")
    poll = Poll(body.poll.name, options, multiple=body.poll.multiple_answers)
    send = SendRequest(body.chat_id, poll, reply_to=body.quoted(), message_id=body.id)
    return await _queue(request, response, gateway, supervisor, tenant_id, body, send, idempotency_key)


class NewMessageIdOut(BaseModel):
    id: str = Field(description="a new message id, to pass as `id` on a send (WAHA's NewMessageIDResponse)")


@router.get("/api/{name}/new-message-id", summary="Make a message id before sending")
async def new_message_id_for(name: SessionName, gateway: GatewayDep, tenant_id: TenantDep) -> NewMessageIdOut:
    """An id in the form WhatsApp's clients make, for a caller that wants to know a message's id before it is sent
    (to store it first, or to retry a send without a second message): pass it as ``id`` to ``sendText``."""
    await find_session(gateway, tenant_id, name)
    return NewMessageIdOut(id=new_message_id())

"""Sending what is neither text nor a file, in WAHA's shapes: ``POST /api/sendLocation``, ``sendContactVcard`` and
``sendPoll`` (answered ``201`` as a ``WAMessage`` once committed to the session's outbound queue, as every send), and
``PUT /api/reaction``, a reaction on a message the session has, queued the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from wagate.api.routes.sending import (
    MESSAGE_ID,
    NEW_MESSAGE_ID,
    SENT,
    OutboxDep,
    SendBase,
    SessionBody,
)
from wagate.api.schemas import NUL_CHECK, error_answers
from wagate.api.wamessage import WAMessageOut
from wagate.domain.content import ContactCard, Contacts, Location, Poll, Reaction
from wagate.domain.waha import parse_message_id
from wagate.errors import NotFound, Unprocessable
from wagate.services.sending import SendRequest

__all__ = [
    "PollIn",
    "SendContactVcard",
    "SendLocation",
    "SendPoll",
    "SetReaction",
    "VCardIn",
    "router",
    "send_contact_vcard",
    "send_location",
    "send_poll",
    "set_reaction",
    "vcard_name",
]

router = APIRouter(tags=["messages"], responses=error_answers(401, 403, 404, 422, 503))


_SHORT = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _SendMade(SendBase):
    """A send whose message id the caller may make (``GET /api/{session}/new-message-id``)."""

    id: str | None = Field(
        None, max_length=64, pattern=NEW_MESSAGE_ID, description="the message's id; a new one when absent"
    )


class SendLocation(_SendMade):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    title: _SHORT | None = Field(None, description="the place's name, shown on the map")


@router.post("/api/sendLocation", summary="Queue a location", **SENT)
async def send_location(body: SendLocation, outbox: OutboxDep) -> WAMessageOut:
    place = Location(body.latitude, body.longitude, body.title)
    send = SendRequest(body.chat_id, place, reply_to=body.quoted(), message_id=body.id)
    return await outbox.queue(body, send)


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


@router.post("/api/sendContactVcard", summary="Queue one contact card or several", **SENT)
async def send_contact_vcard(body: SendContactVcard, outbox: OutboxDep) -> WAMessageOut:
    try:
        cards = Contacts(tuple(contact.card() for contact in body.contacts))
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_vcard") from None
    send = SendRequest(body.chat_id, cards, reply_to=body.quoted(), message_id=body.id)
    return await outbox.queue(body, send)


class PollIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: _SHORT = Field(description="the question")
    options: list[Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]] = (
        Field(min_length=2, max_length=12, description="2 to 12 different answers")
    )
    multiple_answers: bool = Field(False, alias="multipleAnswers", description="a voter may pick several answers")


class SendPoll(_SendMade):
    poll: PollIn


@router.post("/api/sendPoll", summary="Queue a poll", **SENT)
async def send_poll(body: SendPoll, outbox: OutboxDep) -> WAMessageOut:
    options = tuple(body.poll.options)
    if len(set(options)) != len(options):
        raise Unprocessable("a poll's options are all different", code="invalid_poll")
    poll = Poll(body.poll.name, options, multiple=body.poll.multiple_answers)
    send = SendRequest(body.chat_id, poll, reply_to=body.quoted(), message_id=body.id)
    return await outbox.queue(body, send)


class SetReaction(SessionBody):
    message_id: str = Field(
        alias="messageId",
        max_length=128,
        pattern=MESSAGE_ID,
        description="the message to react to: WAHA's serialized id (false_11111111111@c.us_AAAA) or bare",
    )
    reaction: str = Field(
        max_length=32, pattern=r"^[^\x00-\x1f\x7f]*$", description="an emoji; an empty one takes the reaction away"
    )


@router.put(
    "/api/reaction",
    summary="React to a message with an emoji, or take the reaction away",
    responses=error_answers(400, 409, 413, 429),
)
async def set_reaction(body: SetReaction, outbox: OutboxDep) -> WAMessageOut:
    """Queued as a message of its own (WhatsApp's reaction message), with every send's guarantees, to the chat of
    the message it is on; that message must be one the session has (sent or received): ``404 message_not_found``
    otherwise."""
    session = await outbox.session(body.session)
    target_id = parse_message_id(body.message_id).id
    target = await outbox.gateway.store.messages.get(session.tenant_id, session.id, target_id)
    if target is None:
        raise NotFound(f"the session has no message {target_id!r} to react to", code="message_not_found")
    participant = None if target.from_me else (target.sender or None)
    reaction = Reaction(target.id, body.reaction, target.from_me, participant)
    send = SendRequest(target.chat_id, reaction)
    return await outbox.queue(body, send)

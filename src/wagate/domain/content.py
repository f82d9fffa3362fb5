"""What a message carries, one typed value per kind: what the API queues, the sealed body keeps and an engine sends.

A message to send is queued as its :data:`Content` and the chat it goes to; the sealed body holds the content as
JSON (:func:`body_of`), with a media file described there (type, name, size, digest) and its bytes sealed beside
it, and the sender rebuilds the content from both (:func:`content_of`) to hand it to the engine. Each engine maps
every kind to its own protocol's message (``engines/neonize/mapping.py``, the simulator's frames).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wagate.domain.messages import MessageKind

__all__ = [
    "MEDIA_KINDS",
    "ContactCard",
    "Contacts",
    "Content",
    "Location",
    "Media",
    "Poll",
    "Reaction",
    "Text",
    "body_of",
    "content_of",
    "described",
    "kind_of_content",
]

MEDIA_KINDS = frozenset({MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.VOICE, MessageKind.FILE})


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Media:
    """A file sent as ``kind``: an image, a video (``as_note``: a round video note, played inline), a voice message
    (OGG/Opus audio) or a document."""

    kind: MessageKind
    data: bytes
    mimetype: str
    filename: str | None = None
    caption: str | None = None
    as_note: bool = False


@dataclass(frozen=True, slots=True)
class Location:
    """A place on the map; ``name`` is WAHA's ``title``."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    live: bool = False  # a live location a contact shares (received only)


@dataclass(frozen=True, slots=True)
class ContactCard:
    """One contact as a vCard (3.0), with the name WhatsApp shows on the card."""

    name: str
    vcard: str


@dataclass(frozen=True, slots=True)
class Contacts:
    """One contact card, or several in one message (WhatsApp's contacts array)."""

    cards: tuple[ContactCard, ...]


@dataclass(frozen=True, slots=True)
class Poll:
    """A question with options; ``multiple``: a voter may pick several (else one)."""

    name: str
    options: tuple[str, ...]
    multiple: bool = False


@dataclass(frozen=True, slots=True)
class Reaction:
    """An emoji on a message of the chat (``""`` takes the session's reaction away). The message is named as
    WhatsApp keys it: its id, whether the account sent it, and in a group who did (``participant``)."""

    message_id: str
    emoji: str
    from_me: bool
    participant: str | None = None


Content = Text | Media | Location | Contacts | Poll | Reaction


def kind_of_content(content: Content) -> MessageKind:
    if isinstance(content, Media):
        return content.kind
    return _KINDS[type(content)]


_KINDS: dict[type[Any], MessageKind] = {
    Text: MessageKind.TEXT,
    Location: MessageKind.LOCATION,
    Contacts: MessageKind.CONTACTS,
    Poll: MessageKind.POLL,
    Reaction: MessageKind.REACTION,
}


def body_of(content: Content, reply_to: str | None) -> dict[str, Any]:
    """The JSON a queued message's sealed body holds: everything of ``content`` but a media file's bytes, which are
    sealed apart and described here."""
    body: dict[str, Any] = {"replyTo": reply_to}
    if isinstance(content, Text):
        body["text"] = content.text
    elif isinstance(content, Media):
        body["caption"] = content.caption
        body["media"] = {
            "mimetype": content.mimetype,
            "filename": content.filename,
            "size": len(content.data),
            "sha256": hashlib.sha256(content.data).hexdigest(),
        }
        if content.as_note:
            body["asNote"] = True
    elif isinstance(content, Location):
        body["location"] = {
            "latitude": content.latitude,
            "longitude": content.longitude,
            "name": content.name,
            "address": content.address,
            "live": content.live,
        }
    elif isinstance(content, Contacts):
        body["vcards"] = [{"name": card.name, "vcard": card.vcard} for card in content.cards]
    elif isinstance(content, Poll):
        body["poll"] = {"name": content.name, "options": list(content.options), "multiple": content.multiple}
    else:
        body["reaction"] = {
            "messageId": content.message_id,
            "emoji": content.emoji,
            "fromMe": content.from_me,
            "participant": content.participant,
        }
    return body


def described(content: Location | Contacts | Poll) -> dict[str, Any]:
    """What a stored body holds of a place, contact cards or a poll (``location``, ``vcards``, ``poll``)."""
    body = body_of(content, None)
    del body["replyTo"]
    return body


def content_of(kind: MessageKind, body: Mapping[str, Any], media: bytes | None) -> Content:
    """The content a sealed body (and a media file's opened bytes) describe. Raises ``ValueError`` when they do not
    make a message of ``kind``."""
    if kind in MEDIA_KINDS:
        meta = body.get("media")
        if media is None or not isinstance(meta, Mapping):
            raise ValueError(f"a {kind.value} message without its media")
        return Media(
            kind,
            media,
            str(meta.get("mimetype") or "application/octet-stream"),
            meta.get("filename"),
            body.get("caption") or body.get("text"),  # bodies queued before the kinds were typed kept it as text
            as_note=bool(body.get("asNote")),
        )
    if kind is MessageKind.TEXT:
        return Text(str(body.get("text") or ""))
    if kind is MessageKind.LOCATION and isinstance(place := body.get("location"), Mapping):
        latitude, longitude = float(place["latitude"]), float(place["longitude"])
        return Location(latitude, longitude, place.get("name"), place.get("address"), bool(place.get("live")))
    if kind is MessageKind.CONTACTS and isinstance(cards := body.get("vcards"), list):
        return Contacts(tuple(ContactCard(str(c["name"]), str(c["vcard"])) for c in cards))
    if kind is MessageKind.POLL and isinstance(poll := body.get("poll"), Mapping):
        return Poll(str(poll["name"]), tuple(str(o) for o in poll["options"]), bool(poll.get("multiple")))
    if kind is MessageKind.REACTION and isinstance(on := body.get("reaction"), Mapping):
        return Reaction(str(on["messageId"]), str(on["emoji"]), bool(on["fromMe"]), on.get("participant"))
    raise ValueError(f"the body does not hold a {kind.value} message")

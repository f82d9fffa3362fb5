"""Messages as the API answers them: WAHA's ``WAMessage``, built by ``wagate.domain.waha.wa_message`` from a stored
message and its sealed body.

wagate's own record of the message rides in ``_data`` (WAHA's raw-message field): WhatsApp's bare ``id``, the
gateway's ``status`` (``pending``, ``sending``, ``sent`` ...), the ``type``, the send ``attempts``, the last
``error``, and ``unreadable`` when the stored body is damaged and cannot be opened (``body`` is then empty and
``media``/``replyTo`` are null).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wagate.domain.messages import Message
from wagate.domain.phones import user_jid
from wagate.domain.sessions import Session
from wagate.domain.waha import public_jid, wa_message
from wagate.gateway import Gateway

__all__ = [
    "LocationOut",
    "MessageReader",
    "ReplyToOut",
    "S3Out",
    "WAMediaOut",
    "WAMessageOut",
    "me_jid",
    "reply_id",
]


class S3Out(BaseModel):
    """Where WAHA keeps a media file in S3; wagate keeps none there (never given)."""

    Bucket: str
    Key: str


class WAMediaOut(BaseModel):
    """A message's media: what it is. wagate keeps no media files to download, so ``url`` is null."""

    url: str | None = Field(None, description="always null: wagate keeps no media files to download")
    mimetype: str | None = None
    filename: str | None = None
    s3: S3Out | None = None
    error: dict[str, Any] | None = None


class LocationOut(BaseModel):
    """A location message's place (on a message the session sent; received places are not reported yet)."""

    latitude: str
    longitude: str
    live: bool
    name: str | None = None
    address: str | None = None
    url: str | None = None
    description: str | None = None
    thumbnail: str | None = None


class ReplyToOut(BaseModel):
    """The message this one quotes: its WhatsApp id, and what the session has stored of it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(description="WhatsApp's id of the quoted message (bare, as WAHA gives it here)")
    participant: str | None = None
    body: str | None = Field(None, description="the quoted message's text, when this session has it")
    hasMedia: bool = Field(description="false also when the session does not have the quoted message")
    media: WAMediaOut | None = None
    data: dict[str, Any] | None = Field(None, alias="_data")


class WAMessageOut(BaseModel):
    """A message as WAHA gives it (``WAMessage``)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(description="WAHA's serialized id: `{fromMe}_{chatId}_{id}`, `_{participant}` after it in a group")
    timestamp: int = Field(description="seconds since the epoch")
    sender: str = Field(alias="from", description="the chat, or the session's own id for a message it sent")
    fromMe: bool
    source: Literal["api", "app"] = Field(description="api: queued through this API; app: any other message")
    to: str
    participant: str = Field(description="the sender of a group message from someone else; empty otherwise")
    body: str = Field(description="the text, or a media's caption")
    hasMedia: bool
    media: WAMediaOut | None = Field(None, description="null with `downloadMedia=false`")
    mediaUrl: str = Field(description="deprecated for `media.url`; empty")
    ack: Literal[-1, 0, 1, 2, 3, 4] = Field(description="-1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED")
    ackName: str
    author: str | None = None
    location: LocationOut | None = None
    vCards: list[str]
    data: dict[str, Any] = Field(
        alias="_data",
        description="wagate's record: id, status, type, attempts, error; a poll's question and options; a "
        "reaction's emoji and the message it is on",
    )
    replyTo: ReplyToOut | None = None


def me_jid(session: Session) -> str | None:
    """The session's own JID (``N@s.whatsapp.net``), once it is known."""
    phone = (session.me or {}).get("phone")
    try:
        return user_jid(str(phone)) if phone else None
    except ValueError:
        return None


def reply_id(body: Mapping[str, Any] | None) -> str | None:
    """The id of the message a stored body quotes: a sent message keeps it as ``replyTo``, a received one in its
    engine's ``extra``."""
    if not body:
        return None
    found = body.get("replyTo") or (body.get("extra") or {}).get("replyTo")
    return str(found) if found else None


class MessageReader:
    """Opens stored messages of one session into ``WAMessage`` answers (the quoted messages looked up at once)."""

    def __init__(self, gateway: Gateway, session: Session, *, download_media: bool = True) -> None:
        self._gateway = gateway
        self._session = session
        self._media = download_media

    async def one(self, message: Message) -> WAMessageOut:
        return (await self.many([message]))[0]

    async def many(self, messages: Iterable[Message]) -> list[WAMessageOut]:
        listed = list(messages)
        bodies = [await self._open(m) for m in listed]
        quoted_ids = {found for body in bodies if (found := reply_id(body))}
        store = self._gateway.store.messages
        quoted = await store.get_many(self._session.tenant_id, self._session.id, quoted_ids)
        quoted_bodies = {key: await self._open(m) for key, m in quoted.items()}
        return [
            self._out(m, body, self._reply(reply_id(body), quoted, quoted_bodies))
            for m, body in zip(listed, bodies, strict=True)
        ]

    async def _open(self, message: Message) -> dict[str, Any] | None:
        body = await self._gateway.bodies.readable_body(message.tenant_id, message.session_id, message.id, message.body)
        return body if isinstance(body, dict) else None

    def _reply(
        self, quoted_id: str | None, quoted: Mapping[str, Message], bodies: Mapping[str, dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        if quoted_id is None:
            return None
        original = quoted.get(quoted_id)
        if original is None:
            return {"id": quoted_id, "hasMedia": False}
        body = bodies.get(quoted_id) or {}
        reply: dict[str, Any] = {
            "id": quoted_id,
            "participant": public_jid(original.sender) if original.sender else None,
            "body": body.get("text") or body.get("caption"),
            "hasMedia": bool(body.get("media")),
        }
        if body.get("media") and self._media:
            reply["media"] = _media(body["media"])
        return reply

    def _out(self, message: Message, body: dict[str, Any] | None, reply: dict[str, Any] | None) -> WAMessageOut:
        opened = body or {}
        media = opened.get("media")
        built = wa_message(
            message_id=message.id,
            chat_id=message.chat_id,
            me=me_jid(self._session),
            from_me=message.from_me,
            sender=message.sender or None,
            timestamp=message.timestamp,
            body=opened.get("text") or opened.get("caption"),
            status=message.status,
            media=_media(media) if media else None,
            reply_to=reply,
            # The account's own messages come from the API, or from a WhatsApp app (the phone), which says so.
            source=str(opened.get("source") or "api") if message.from_me else "app",
            extra={
                "status": message.status.value,
                "type": message.kind.value,
                "attempts": message.attempts,
                "error": message.error,
                "unreadable": body is None,
                **{key: opened[key] for key in ("poll", "reaction") if opened.get(key)},
            },
            location=opened.get("location"),
            vcards=[str(card.get("vcard")) for card in opened.get("vcards") or ()],
        )
        if not self._media:
            built.pop("media", None)
        return WAMessageOut.model_validate(built)


def _media(reference: Mapping[str, Any]) -> dict[str, Any]:
    return {"url": None, "mimetype": reference.get("mimetype"), "filename": reference.get("filename")}

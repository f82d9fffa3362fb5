"""Queueing a message to send: validated, its media fetched or decoded, sealed, committed to the outbound queue.

The API answers only after the commit, so an accepted message survives any crash. An ``Idempotency-Key`` (per
tenant) makes a retried request return the first request's message instead of sending again; the same key with a
different request is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from wagate.domain.content import Contacts, Location, Media, Poll, Reaction, Text, body_of, kind_of_content
from wagate.domain.messages import Message, MessageKind, NewOutbound, new_message_id, normal_chat_id
from wagate.domain.phones import user_jid
from wagate.domain.sessions import Session, Status
from wagate.errors import AlreadyExists, Conflict, QueueFull, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.net.media import Media as Fetched
from wagate.net.media import MediaError, MediaFetcher, decode_base64, guess_mimetype

__all__ = ["MediaRequest", "MediaSource", "SendRequest", "SendingService", "fingerprint"]


@dataclass(frozen=True, slots=True)
class MediaSource:
    url: str | None
    data: str | None
    mimetype: str | None
    filename: str | None


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """A file to send as ``kind``, before it is fetched or decoded. ``convert`` asks for a voice message's audio to be
    made OGG/Opus, or a video H.264 MP4, which wagate cannot do yet: it then takes only what needs no conversion."""

    kind: MessageKind
    source: MediaSource
    caption: str | None = None
    convert: bool = False
    as_note: bool = False


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A message to queue: its content (a media file still to fetch); ``reply_to`` is WhatsApp's bare id of the
    quoted message; ``message_id`` the caller's own id for the message (a new one is made when absent)."""

    chat_id: str
    content: Text | Location | Contacts | Poll | Reaction | MediaRequest
    reply_to: str | None = None
    message_id: str | None = None


class SendingService:
    """What ``POST /api/send*`` does once the caller's session is known."""

    def __init__(self, gateway: Gateway, fetcher: MediaFetcher) -> None:
        self._gateway = gateway
        self._bodies = gateway.bodies
        self._fetcher = fetcher

    async def queue(
        self, session: Session, request: SendRequest, *, idempotency_key: str | None, fingerprint: str
    ) -> tuple[Message, bool]:
        if session.status is not Status.WORKING:
            raise Conflict(
                f"session {session.name!r} is {session.status.value}, not WORKING: it cannot send now",
                code="session_not_working",
                details={"status": session.status.value},
            )
        try:
            chat_id = normal_chat_id(request.chat_id)
        except ValueError as exc:
            raise Unprocessable(str(exc), code="invalid_chat_id") from None
        asked = request.content
        content = await self._media(session.tenant_id, asked) if isinstance(asked, MediaRequest) else asked
        message_id = request.message_id or new_message_id()
        media = content.data if isinstance(content, Media) else None
        tenant_id, session_id = session.tenant_id, session.id
        new = NewOutbound(
            tenant_id=tenant_id,
            session_id=session_id,
            id=message_id,
            chat_id=chat_id,
            sender=_me(session),
            kind=kind_of_content(content),
            body=await self._bodies.seal_body(tenant_id, session_id, message_id, body_of(content, request.reply_to)),
            media=await self._bodies.seal_media(tenant_id, session_id, message_id, media) if media else None,
            idem_key=idempotency_key,
            idem_hash=fingerprint if idempotency_key else None,
        )
        settings = self._gateway.settings
        try:
            return await self._gateway.store.messages.enqueue(new, max_queued=settings.send_queue_max)
        except AlreadyExists:
            raise Unprocessable(
                f"the session has a message {message_id!r} already: give a new id, or none", code="message_id_taken"
            ) from None
        except QueueFull as exc:
            rate = float(session.config.get("send_rate") or settings.send_rate)
            raise QueueFull(exc.message, retry_after=max(1, math.ceil(60.0 / rate))) from None

    async def _media(self, tenant_id: TenantId, request: MediaRequest) -> Media:
        source = request.source
        limit = self._gateway.settings.media_max_bytes
        if (source.url is None) == (source.data is None):
            raise MediaError("give the file as either url or data (base64), not both", code="invalid_media")
        if source.data is not None:
            default = "application/octet-stream"
            fetched = Fetched(decode_base64(source.data, limit), guess_mimetype(source.filename, default), None)
        else:
            assert source.url is not None
            fetched = await self._fetcher.fetch(source.url, tenant_id)
        if not fetched.data:
            raise MediaError("the media is empty (0 bytes)", code="empty_media")
        if len(fetched.data) > limit:
            raise MediaError(f"the media is larger than {limit} bytes", code="media_too_large")
        mimetype = source.mimetype or fetched.mimetype
        wanted = _WANTED.get(request.kind)
        if wanted is not None and not mimetype.startswith(wanted):
            raise MediaError(f"{request.kind.value} media must be {wanted}*, not {mimetype}", code="invalid_media")
        playable = _PLAYABLE.get(request.kind)
        if request.convert and playable is not None and not mimetype.lower().startswith(playable[0]):
            raise MediaError(
                f"wagate does not convert media yet: send {playable[1]}, not {mimetype}", code="conversion_unsupported"
            )
        filename = source.filename or fetched.filename
        return Media(request.kind, fetched.data, mimetype, filename, request.caption, as_note=request.as_note)


_WANTED = {MessageKind.IMAGE: "image/", MessageKind.VOICE: "audio/", MessageKind.VIDEO: "video/"}
# What WhatsApp plays, by kind, without a conversion: a voice message in OGG/Opus, a video as MP4 (H.264 and AAC).
_PLAYABLE = {
    MessageKind.VOICE: (("audio/ogg", "audio/opus"), "OGG/Opus audio (audio/ogg; codecs=opus)"),
    MessageKind.VIDEO: (("video/mp4",), "an MP4 video (video/mp4, H.264 and AAC)"),
}


def fingerprint(route: str, payload: dict[str, Any]) -> str:
    """What makes two requests the same request (for idempotency keys)."""
    canonical = json.dumps({"route": route, **payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _me(session: Session) -> str:
    phone = (session.me or {}).get("phone")
    try:
        return user_jid(str(phone)) if phone else ""
    except ValueError:
        return ""

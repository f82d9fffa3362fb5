"""WAHA's forms of what the gateway reports: chat ids, serialized message ids, acks and the message itself.

wagate keeps ids as WhatsApp's multi-device protocol writes them (``DIGITS@s.whatsapp.net``, a device after ``:``);
every answer and event gives them as WAHA does (``DIGITS@c.us``, ``…@g.us``, ``…@lid``), and a message's id as
WAHA serializes it: ``{fromMe}_{chatId}_{id}``, with ``_{participant}`` after it for a group message from someone
else (``false_123@g.us_3EB0…_456@c.us``). Inputs take both forms. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from wagate.domain.messages import MessageStatus

__all__ = [
    "TIER",
    "Ack",
    "MessageRef",
    "ack_of",
    "environment",
    "parse_message_id",
    "public_jid",
    "serialize_message_id",
    "wa_message",
    "waha_engine",
]

_USER_SERVER = "@s.whatsapp.net"
# A person's JID, maybe with an agent (``.0``) and a device (``:12``): WAHA names the person, not the device.
_DEVICE_JID = re.compile(r"^([0-9]+)(?:\.[0-9]+)?(?::[0-9]+)?@s\.whatsapp\.net$")
_LID_DEVICE = re.compile(r"^([0-9]+)(?:\.[0-9]+)?(?::[0-9]+)?@lid$")


def public_jid(jid: str) -> str:
    """``jid`` as WAHA gives it: ``N@c.us`` for a person (device and agent dropped), ``N@lid`` for a hidden
    number; a group (``@g.us``), a broadcast or a newsletter as it is."""
    if match := _DEVICE_JID.fullmatch(jid):
        return f"{match.group(1)}@c.us"
    if match := _LID_DEVICE.fullmatch(jid):
        return f"{match.group(1)}@lid"
    return jid


class Ack(IntEnum):
    """WAHA's ack numbers (``ack``), named as its ``ackName`` names them."""

    ERROR = -1
    PENDING = 0
    SERVER = 1
    DEVICE = 2
    READ = 3
    PLAYED = 4


_ACKS = {
    MessageStatus.FAILED: Ack.ERROR,
    MessageStatus.PENDING: Ack.PENDING,
    MessageStatus.SENDING: Ack.PENDING,
    MessageStatus.SENT: Ack.SERVER,
    MessageStatus.DELIVERED: Ack.DEVICE,
    MessageStatus.READ: Ack.READ,
    MessageStatus.RECEIVED: Ack.DEVICE,  # it reached this device
}


def ack_of(status: MessageStatus) -> Ack:
    return _ACKS[status]


def serialize_message_id(from_me: bool, chat_id: str, message_id: str, participant: str | None = None) -> str:
    """WAHA's id of a message: ``participant`` (the sender) only for a group message from someone else."""
    serialized = f"{'true' if from_me else 'false'}_{public_jid(chat_id)}_{message_id}"
    if participant and not from_me and chat_id.endswith("@g.us"):
        serialized += f"_{public_jid(participant)}"
    return serialized


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message id as a caller gave it: WhatsApp's bare id, with what a serialized one adds (``None`` if not)."""

    id: str
    from_me: bool | None = None
    chat_id: str | None = None  # as written in the serialized id (``@c.us``)
    participant: str | None = None


_SERIALIZED = re.compile(r"^(true|false)_([^_@\s]+@[a-z.]+)_([^_\s]+)(?:_([^_@\s]+@[a-z.]+))?$")


def parse_message_id(value: str) -> MessageRef:
    """Reads WAHA's serialized id (``false_N@c.us_ID``, ``…_ID_P@c.us``) or a bare WhatsApp id."""
    if match := _SERIALIZED.fullmatch(value):
        from_me, chat, bare, participant = match.groups()
        return MessageRef(bare, from_me == "true", chat, participant)
    return MessageRef(value)


def wa_message(
    *,
    message_id: str,
    chat_id: str,
    me: str | None,
    from_me: bool,
    sender: str | None,
    timestamp: float,
    body: str | None,
    status: MessageStatus,
    media: Mapping[str, Any] | None = None,
    reply_to: Mapping[str, Any] | None = None,
    source: str = "app",
    extra: Mapping[str, Any] | None = None,
    location: Mapping[str, Any] | None = None,
    vcards: Sequence[str] = (),
) -> dict[str, Any]:
    """A message as WAHA's ``WAMessage``. ``chat_id``, ``me`` and ``sender`` are JIDs as stored; ``me`` is the
    session's own JID (``None`` before it is known); ``sender`` who wrote it (the participant in a group).
    ``source`` is ``api`` for a message the API queued, ``app`` for any other (written in a WhatsApp app);
    ``reply_to`` the quoted message as WAHA's ``ReplyToMessage`` (``id`` and ``hasMedia`` at least); ``location``
    a place as a stored body keeps it (``domain.content``), ``vcards`` the cards of a contacts message.

    Every field WAHA's schema requires is given, never null: ``participant`` is empty outside a group message from
    someone else, ``mediaUrl`` (deprecated for ``media.url``) is empty when the media has no URL."""
    chat = public_jid(chat_id)
    own = public_jid(me) if me else ""
    group = chat_id.endswith("@g.us")
    participant = public_jid(sender) if group and sender and not from_me else None
    ack = ack_of(status)
    message: dict[str, Any] = {
        "id": serialize_message_id(from_me, chat_id, message_id, sender),
        "timestamp": int(timestamp),
        "from": own if from_me else chat,
        "fromMe": from_me,
        "to": chat if from_me else own,
        "participant": participant or "",
        "source": source,
        "body": body or "",
        "hasMedia": media is not None,
        "mediaUrl": str((media or {}).get("url") or ""),
        "ack": int(ack),
        "ackName": ack.name,
        "vCards": list(vcards),
        "_data": {"id": message_id},
    }
    if participant:
        message["author"] = participant
    if media is not None:
        message["media"] = dict(media)
    message["replyTo"] = dict(reply_to) if reply_to else None
    if location is not None:
        message["location"] = {
            "latitude": str(location["latitude"]),
            "longitude": str(location["longitude"]),
            "live": bool(location.get("live")),
            "name": location.get("name"),
            "address": location.get("address"),
        }
    if extra:
        message["_data"].update(extra)
    return message


TIER = "WAGATE"  # WAHA's tiers are its editions (CORE, PLUS): wagate is neither, and says so
# wagate's engines by the WAHA engine they stand beside: neonize drives whatsmeow, as WAHA's GOWS does; the
# simulator speaks the same multi-device protocol to its fake WhatsApp.
_WAHA_ENGINES = {"neonize": "GOWS", "sim": "GOWS"}


def waha_engine(engine: str) -> str:
    """The name WAHA gives the kind of engine that ``engine`` (wagate's name) is."""
    return _WAHA_ENGINES.get(engine, engine.upper())


def environment(version: str, engine: str, platform: str, worker: str | None) -> dict[str, Any]:
    """WAHA's ``WAHAEnvironment``: the gateway's version, its default engine (WAHA's name for it), the platform
    (``linux/x86_64``) and the worker that answers; no browser runs (``browser`` is empty)."""
    return {
        "version": version,
        "engine": waha_engine(engine),
        "tier": TIER,
        "browser": "",
        "platform": platform,
        "worker": {"id": worker},
    }

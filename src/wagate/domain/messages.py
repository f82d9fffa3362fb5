"""Messages, chats, contacts and groups as the gateway keeps them; no I/O.

A message's status only moves forward: an outbound one goes ``pending -> sending -> sent -> delivered -> read``
(receipts can skip steps or arrive late, never move it back), or ends ``failed`` before it was sent. ``sending`` is
the gateway's own: the message was handed to the engine and the server's answer is not recorded yet. The only way
back is ``sending -> pending``, when the engine says the server never got it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from wagate.domain.auth import AuthWrite
from wagate.domain.events import Event
from wagate.ids import SessionId, TenantId

__all__ = [
    "CHAT_ID_PATTERN",
    "PERSON_ID_PATTERN",
    "QUEUED",
    "Append",
    "Chat",
    "Contact",
    "Group",
    "InboundMessage",
    "Message",
    "MessageKind",
    "MessageStatus",
    "NewOutbound",
    "StatusUpdate",
    "is_group",
    "kind_of",
    "moves",
    "new_message_id",
    "normal_chat_id",
    "reported",
]


class MessageStatus(StrEnum):
    RECEIVED = "received"  # inbound
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    FILE = "file"
    VOICE = "voice"
    LOCATION = "location"
    CONTACTS = "contacts"  # one contact card or several
    POLL = "poll"
    REACTION = "reaction"  # an emoji on another message (an empty one takes the session's reaction away)


QUEUED = (MessageStatus.PENDING, MessageStatus.SENDING)
_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
}


def moves(old: MessageStatus, new: MessageStatus) -> bool:
    """Whether an outbound message in status ``old`` may take status ``new``."""
    if old is MessageStatus.SENDING and new is MessageStatus.PENDING:
        return True  # the server never got it: send it again
    if new is MessageStatus.FAILED:
        return old in QUEUED
    if old not in _RANK or new not in _RANK:
        return False
    return _RANK[new] > _RANK[old]


def reported(status: MessageStatus) -> bool:
    """Whether reaching ``status`` is news for the tenant (a ``message.ack`` event)."""
    return status not in QUEUED and status is not MessageStatus.RECEIVED


_USER = re.compile(r"^\+?([1-9][0-9]{5,14})(?:@(?:c\.us|s\.whatsapp\.net))?$")
_GROUP = re.compile(r"^([0-9]{6,24}(?:-[0-9]{6,14})?)@g\.us$")
_LID = re.compile(r"^([0-9]{6,24})@lid$")
# Every chat id ``normal_chat_id`` takes (without the blanks it strips), as one pattern for the API's document.
CHAT_ID_PATTERN = "^(?:" + "|".join(p.pattern[1:-1] for p in (_USER, _GROUP, _LID)) + ")$"
PERSON_ID_PATTERN = "^(?:" + "|".join(p.pattern[1:-1] for p in (_USER, _LID)) + ")$"  # a chat id but a group's


def normal_chat_id(value: str) -> str:
    """A chat id in the form WhatsApp's multi-device protocol uses: ``DIGITS@s.whatsapp.net`` for a person (from
    ``+DIGITS``, ``DIGITS``, ``DIGITS@c.us`` as WAHA writes it, or the same), ``ID@g.us`` for a group, ``ID@lid``.
    Raises ``ValueError`` for anything else."""
    value = value.strip()
    if match := _USER.fullmatch(value):
        return f"{match.group(1)}@s.whatsapp.net"
    if _GROUP.fullmatch(value) or _LID.fullmatch(value):
        return value
    raise ValueError("a chat id is a phone number (+15550001, 15550001@c.us) or a group id (...@g.us)")


def is_group(chat_id: str) -> bool:
    return chat_id.endswith("@g.us")


def new_message_id() -> str:
    """A client-made message id in the form WhatsApp clients use (``3EB0`` and upper-case hex)."""
    return "3EB0" + secrets.token_hex(10).upper()


def kind_of(mimetype: str) -> MessageKind:
    if mimetype.startswith("image/"):
        return MessageKind.IMAGE
    if mimetype.startswith("video/"):
        return MessageKind.VIDEO
    if mimetype.startswith("audio/"):
        return MessageKind.VOICE
    return MessageKind.FILE


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message. ``body`` is sealed with the session's data key (text, caption, media reference)."""

    seq: int
    tenant_id: TenantId
    session_id: SessionId
    id: str
    chat_id: str
    sender: str
    from_me: bool
    kind: MessageKind
    status: MessageStatus
    timestamp: float
    created_at: float
    updated_at: float
    attempts: int
    error: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Chat:
    id: str
    name: str | None
    is_group: bool
    last_message_id: str | None
    last_message_at: float
    messages: int


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str | None
    push_name: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    subject: str | None
    participants: list[str]
    updated_at: float


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A received message to store, with the ``message`` event that reports it (committed only if the
    message is new: inbound processing is idempotent by message id). ``from_me``: a message the account sent from
    its phone (or another of its devices), which the session sees as its companion does; stored as ``sent``."""

    tenant_id: TenantId
    session_id: SessionId
    id: str
    chat_id: str
    sender: str
    push_name: str | None
    kind: MessageKind
    timestamp: float
    body: bytes  # sealed
    event: Event
    from_me: bool = False  # sent by the account itself, from the phone or another of its devices


@dataclass(frozen=True, slots=True)
class Append:
    """What one session reports together: events, received messages (each stored with its event only if new),
    and the auth-state changes that go with them (a ratchet advanced by those messages)."""

    events: Sequence[Event] = ()
    inbound: Sequence[InboundMessage] = ()
    auth: AuthWrite | None = None


@dataclass(frozen=True, slots=True)
class NewOutbound:
    """A message to send, queued before anything else happens to it."""

    tenant_id: TenantId
    session_id: SessionId
    id: str
    chat_id: str
    sender: str
    kind: MessageKind
    body: bytes  # sealed
    media: bytes | None = None  # sealed, kept until sent
    idem_key: str | None = None
    idem_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status an outbound message may take (applied only when it moves forward, see ``domain.messages``)."""

    tenant_id: TenantId
    session_id: SessionId
    session_name: str
    message_id: str
    status: MessageStatus
    error: str | None = None
    timestamp: float | None = None

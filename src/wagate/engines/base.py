"""The engine contract: what the supervisor needs from a WhatsApp client, and the typed events it reports.

An engine opens one :class:`Connection` per session from an :class:`EngineContext`. ``connect()`` returns once the
connection is established (logged in, or waiting for a QR scan) and raises :class:`EngineConnectError` when it
cannot be. From then on the engine reports what happens by awaiting ``ctx.emit(event)``: the supervisor has
committed whatever the event implies before ``emit`` returns, so an engine acknowledges to WhatsApp only after that
(DESIGN, principle 3). A connection that ends reports exactly one closing event: ``Disconnected``, ``LoggedOut``,
``Replaced`` or ``TemporarilyBanned``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from wagate.clock import Clock
from wagate.domain.content import Contacts, Content, Location, Poll
from wagate.domain.messages import Contact, Group
from wagate.domain.sessions import Proxy
from wagate.errors import WagateError
from wagate.ids import SessionId, TenantId

if TYPE_CHECKING:  # the store's module brings the settings and pydantic, which an engine host has no use for
    from wagate.store.contracts.auth import AuthState

__all__ = [
    "BatchSink",
    "Connected",
    "Connection",
    "ContactStateDamaged",
    "ContactsUpdated",
    "DecryptFailed",
    "DeviceStateDamaged",
    "Disconnected",
    "Engine",
    "EngineConnectError",
    "EngineContext",
    "EngineEvent",
    "EngineNotice",
    "EngineUnavailable",
    "EventSink",
    "GroupsUpdated",
    "LoggedOut",
    "Me",
    "MessageAck",
    "MessageReceived",
    "OutgoingMessage",
    "Paired",
    "PairingCode",
    "QrCode",
    "Reconnecting",
    "Replaced",
    "SendRejected",
    "SentMessage",
    "StateChanges",
    "TemporarilyBanned",
]


@dataclass(frozen=True, slots=True)
class Me:
    """Who the session is logged in as."""

    id: str
    phone: str
    push_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "phone": self.phone, "pushName": self.push_name}


class EngineEvent:
    """Base of every engine event. ``closing`` events end the connection; ``permanent`` ones forbid reconnecting."""

    closing: ClassVar[bool] = False
    permanent: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class QrCode(EngineEvent):
    code: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class PairingCode(EngineEvent):
    code: str


@dataclass(frozen=True, slots=True)
class Paired(EngineEvent):
    me: Me


@dataclass(frozen=True, slots=True)
class Connected(EngineEvent):
    me: Me


@dataclass(frozen=True, slots=True)
class Disconnected(EngineEvent):
    """The connection ended. ``error`` is set when the engine itself failed (``LeaseLost`` among others)."""

    closing: ClassVar[bool] = True
    reason: str
    retryable: bool = True
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Reconnecting(EngineEvent):
    """The connection dropped and the engine itself is reconnecting (whatsmeow does, within one client); a
    ``Connected`` follows when it is back, a closing event when it gives up."""

    reason: str


@dataclass(frozen=True, slots=True)
class LoggedOut(EngineEvent):
    closing: ClassVar[bool] = True
    permanent: ClassVar[bool] = True
    reason: str


@dataclass(frozen=True, slots=True)
class Replaced(EngineEvent):
    """conflict: another connection took over this device."""

    closing: ClassVar[bool] = True
    permanent: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class TemporarilyBanned(EngineEvent):
    closing: ClassVar[bool] = True
    permanent: ClassVar[bool] = True
    until: float | None


@dataclass(frozen=True, slots=True)
class DeviceStateDamaged(EngineEvent):
    """The session's own stored credentials no longer open (their bytes changed at rest): the connection cannot log
    in and ends. ``records`` names them (namespace, key); the supervisor puts them back from a backup of the same
    linked device, or quarantines the session (a new link)."""

    closing: ClassVar[bool] = True
    records: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class DecryptFailed(EngineEvent):
    contact: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ContactStateDamaged(EngineEvent):
    """A contact's stored encryption state no longer opened (its bytes changed at rest). The engine dropped it and
    started that contact's session over, as after a Bad MAC burst; the connection and every other contact go on."""

    contact: str


@dataclass(frozen=True, slots=True)
class MessageReceived(EngineEvent):
    message_id: str
    chat: str
    sender: str
    text: str | None
    timestamp: float
    extra: dict[str, Any] = field(default_factory=dict)
    push_name: str | None = None  # the name the sender gave themselves
    media: dict[str, Any] | None = None  # a reference (mimetype, filename, size...), never the bytes
    content: Location | Contacts | Poll | None = None  # a place, contact cards or a poll (``text`` is then None)
    from_me: bool = False  # sent by the account from its phone or another device: ``sender`` is the account


@dataclass(frozen=True, slots=True)
class MessageAck(EngineEvent):
    """A receipt for a message this session sent."""

    message_id: str
    status: str  # sent | delivered | read | failed
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class ContactsUpdated(EngineEvent):
    """Contacts the account knows (its address book as the phone syncs it), all or the changed ones."""

    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class GroupsUpdated(EngineEvent):
    """Groups the account is in, all or the changed ones."""

    groups: tuple[Group, ...]


@dataclass(frozen=True, slots=True)
class EngineNotice(EngineEvent):
    """Anything else the engine reports that a tenant may want to know (published as ``engine.event``)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to send: its ``content`` (one of ``domain.content``'s kinds) to ``chat``, quoting ``reply_to`` (a
    bare WhatsApp id) if set. ``id`` is made by the gateway before the message is queued, as WhatsApp clients make
    theirs, so that a message handed to the server twice is recognisable. An engine that cannot send a kind raises
    ``SendRejected`` naming it."""

    id: str
    chat: str
    content: Content
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    message_id: str
    timestamp: float


EventSink = Callable[[EngineEvent], Awaitable[None]]
StateChanges = Mapping[tuple[str, str], bytes]  # (namespace, key) -> plaintext, as ``AuthState.put_many`` takes


class BatchSink(Protocol):
    """``emit_many``: several events whose effects commit together (a batch of messages), and with them ``state``,
    the auth-state records these events advanced (a ratchet), written as ``AuthState.put_many`` would write them
    (fenced: ``LeaseLost`` when the lease moved, and then nothing of the batch is written). One transaction instead
    of two, and no window in which the messages are stored but the ratchet that decrypted them is not."""

    def __call__(self, events: Sequence[EngineEvent], state: StateChanges | None = None) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class EngineContext:
    """Everything a connection is given about its session."""

    tenant_id: TenantId
    session_id: SessionId
    session_name: str
    auth: AuthState
    emit: EventSink
    emit_many: BatchSink  # several events (and auth-state changes) whose effects commit together
    log: logging.LoggerAdapter[logging.Logger]
    config: dict[str, Any]
    epoch: int
    clock: Clock
    proxy: Proxy | None = None  # every connection of the session goes through it (password opened: never log it)


class EngineConnectError(WagateError):
    """The connection could not be established. ``reason`` is shown as the session's status detail."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class EngineUnavailable(WagateError):
    """The operation needs a live connection in the right state (e.g. a pairing code while not waiting for one)."""


class SendRejected(WagateError):
    """The server refused one message for good (an unknown recipient, a message too large): it fails, alone."""


class Connection(ABC):
    """One session's connection to WhatsApp."""

    @abstractmethod
    async def connect(self) -> None:
        """Connect and log in (or start waiting for a QR scan). Raises ``EngineConnectError``."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close gracefully, keeping the credentials. Emits nothing further. Idempotent."""

    @abstractmethod
    async def logout(self) -> None:
        """Unlink this device from the phone and close. The supervisor wipes the credentials."""

    @abstractmethod
    async def request_pairing_code(self, phone: str) -> str:
        """A pairing code for ``phone`` to type on the phone instead of scanning the QR code."""

    def alive(self) -> bool:
        """Whether the connection still does its work (its reader runs); the health monitor reconnects one that
        says no without having reported an end."""
        return True

    async def reset_contact(self, contact: str) -> None:
        """Drop the encryption session with one contact (its messages keep failing to decrypt); the next message
        from it starts a new one. Engines that cannot raise ``EngineUnavailable``."""
        raise EngineUnavailable("this engine cannot reset one contact's session")

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> SentMessage:
        """Hand one message to the server; returns once the server has it. Raises ``SendRejected`` when the server
        refuses this message, ``EngineUnavailable`` when the connection cannot say (the message is then in doubt)."""

    async def confirm_sent(self, message_ids: Sequence[str]) -> dict[str, float] | None:
        """Of messages in doubt (handed over, the answer lost in a crash), those the server has, with their time;
        None when the engine cannot tell, and the gateway sends them again under the same ids."""
        return None


class Engine(ABC):
    """A kind of connection (``sim``, ``neonize``...)."""

    name: str
    # The auth-state namespace a connection reads first; restoring many sessions loads it for all in one query.
    connect_namespace: str | None = None

    @abstractmethod
    def open(self, ctx: EngineContext) -> Connection: ...

    async def close(self) -> None:  # noqa: B027 - engines without shared resources have nothing to close
        """Release resources shared by this engine's connections."""

    async def forget(self, session_id: str) -> None:  # noqa: B027 - engines that keep nothing outside the vault
        """Remove what this engine keeps of a session outside the vault (a local file of credentials): the session
        was deleted, logged out or reset while not running here."""

    async def local_sessions(self) -> list[str]:
        """The sessions this engine keeps something of outside the vault on this machine (local files of
        credentials), by id: the supervisor forgets those of sessions deleted elsewhere."""
        return []

    def counters(self) -> dict[str, int]:
        """What the engine has counted (starts, failures...), for operators and tests."""
        return {}

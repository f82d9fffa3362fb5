"""The events wagate's webhooks deliver, declared in the OpenAPI document's ``webhooks`` (one ``POST`` per event name,
as WAHA's document declares its own): WAHA's envelope (``WAHAWebhookMessage``) around each payload, with wagate's
``tenant`` beside it. These are the bodies the gateway writes (``domain.events``, ``domain.payloads``); the
WebSocket and the event history (``GET /api/events``) carry the same envelopes.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, create_model

from wagate.api.routes.server import Environment
from wagate.api.wamessage import WAMessageOut
from wagate.domain.events import EventType

__all__ = [
    "EnginePayload",
    "MeInfo",
    "MessageAckBody",
    "PairedPayload",
    "QrPayload",
    "SessionStatusBody",
    "StatusPoint",
    "WipedPayload",
    "declare",
    "envelope_model",
]

_Status = Literal["STOPPED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED"]
_AckNumber = Literal[-1, 0, 1, 2, 3, 4]
_AckName = Literal["ERROR", "PENDING", "SERVER", "DEVICE", "READ", "PLAYED"]


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class MeInfo(_Body):
    """WAHA's ``MeInfo``: the session's account."""

    id: str = Field(description="N@c.us", examples=["15550100@c.us"])
    pushName: str = Field(description="the account's name; empty when it has none")
    jid: str | None = Field(None, description="the id with the device, N:D@s.whatsapp.net")
    lid: str | None = Field(None, description="the hidden number, N@lid, when known")
    reachoutTimelock: None = Field(description="no restriction seen: the engines report none")


class MessageAckBody(_Body):
    """WAHA's ``WAMessageAckBody``, with wagate's ``status``, ``previous``, ``timestamp`` and ``error``."""

    id: str = Field(description="WAHA's serialized id of the sent message")
    from_: str = Field(alias="from", description="the session's account; empty for an event stored before it was")
    to: str = Field(description="the chat")
    participant: str = Field(description="whose receipt: the chat")
    fromMe: bool
    ack: _AckNumber
    ackName: _AckName
    data: dict[str, Any] = Field(alias="_data", description="id: WhatsApp's own id")
    status: Literal["sent", "delivered", "read", "failed"]
    previous: str | None
    timestamp: float | None = Field(description="when it was sent (seconds)")
    error: str | None = Field(None, description="why it failed")


class StatusPoint(_Body):
    status: _Status
    timestamp: int = Field(description="ms")


class SessionStatusBody(_Body):
    """WAHA's ``WASessionStatusBody`` (``statuses``: the status before and the new one), with wagate's ``previous``,
    ``reason``, ``note``, ``me`` (as stored) and ``actor``."""

    name: str
    status: _Status
    data: dict[str, Any] | None
    statuses: list[StatusPoint]
    previous: _Status
    reason: str | None
    note: str | None
    me: dict[str, Any] | None
    actor: str


class EnginePayload(_Body):
    """WAHA's ``EnginePayload``: what the engine noticed that has no event of its own (docs/events.md)."""

    event: str = Field(description="its kind")
    data: dict[str, Any]


class QrPayload(_Body):
    expiresAt: float


class PairedPayload(_Body):
    me: MeInfo | None


class WipedPayload(_Body):
    cause: Literal["api", "corruption", "damaged_record"]
    backup: str | None = Field(None, description="the id of the backup kept, if any")
    action: Literal["quarantined", "restored", "contact_reset"] | None = None
    record: Literal["data_key"] | None = None
    contact: str | None = None


_PAYLOADS: dict[EventType, tuple[type[BaseModel], str]] = {
    EventType.SESSION_STATUS: (SessionStatusBody, "The session's status changed."),
    EventType.MESSAGE: (WAMessageOut, "A message someone else sent to the session."),
    EventType.MESSAGE_ANY: (WAMessageOut, "Every message: someone else's (as message) and the session's own."),
    EventType.MESSAGE_ACK: (MessageAckBody, "A sent message's progress: at the server, delivered, read, failed."),
    EventType.ENGINE_EVENT: (EnginePayload, "Something the engine noticed that has no event of its own."),
    EventType.SESSION_QR: (QrPayload, "wagate's: a new QR code to scan (fetch it from /api/{session}/auth/qr)."),
    EventType.SESSION_PAIRED: (PairedPayload, "wagate's: the phone linked the session."),
    EventType.SESSION_CORRUPTED: (WipedPayload, "wagate's: the session was quarantined, or damaged state repaired."),
    EventType.SESSION_RESET: (WipedPayload, "wagate's: the session was wiped by request."),
}


class _Envelope(_Body):
    id: str = Field(description="evt_ and a lower-case ULID: ids sort by time", examples=["evt_01jd..."])
    timestamp: int = Field(description="when it happened, in ms")
    session: str
    metadata: dict[str, Any] | None = Field(description="the session's config.metadata")
    engine: Literal["GOWS"] = Field(description="WAHA's name for the kind of engine (whatsmeow)")
    me: MeInfo | None = Field(description="the session's account; null before it is linked")
    environment: Environment
    tenant: str = Field(description="wagate's: the tenant the session belongs to")


def _envelope(event: EventType, payload: type[BaseModel]) -> type[BaseModel]:
    """WAHA's envelope of one event, named after WAHA's own (``WAHAWebhookMessageAck``: ``WagateWebhookMessageAck``)."""
    words = "".join(word.capitalize() for word in event.value.split("."))
    name: Any = Literal[event.value]
    return create_model(f"WagateWebhook{words}", __base__=_Envelope, event=(name, ...), payload=(payload, ...))


_MODELS = {event: _envelope(event, payload) for event, (payload, _) in _PAYLOADS.items()}


def envelope_model(event: EventType) -> type[BaseModel]:
    """The declared body of ``event``: WAHA's envelope around its payload."""
    return _MODELS[event]


def declare(webhooks: APIRouter) -> None:
    """Declare every event on the application's ``webhooks`` router (what the OpenAPI document lists)."""
    for event, (_, summary) in _PAYLOADS.items():
        model = _MODELS[event]

        async def receive(body: BaseModel) -> None:
            """Answer 2xx to take it; 410 disables the endpoint; anything else is retried."""

        receive.__annotations__ = {"body": model, "return": None}  # each event's own body, for the document
        webhooks.add_api_route(event.value, receive, methods=["POST"], summary=summary, name=f"event {event.value}")

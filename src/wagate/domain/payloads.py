"""What each event the sessions report says: the public payload of every event type, in one place beside the types.

Subscribers (webhooks, WebSockets, the event history) read these shapes; ``docs/events.md`` describes them. Keys are
WAHA's where WAHA has the field (``fromMe``, ``pushName``, ``expiresAt``). ``session.status`` and ``message.ack`` are
written with the changes they report, by the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = [
    "Cause",
    "contact_reset",
    "engine_event",
    "message_received",
    "quarantined",
    "restored",
    "session_paired",
    "session_qr",
    "session_reset",
]


class Cause(StrEnum):
    """Why a session's state was wiped (``session.reset``) or found damaged (``session.corrupted``)."""

    API = "api"  # by request: POST /api/sessions/{name}/reset
    CORRUPTION = "corruption"  # messages from many contacts failed to decrypt
    DAMAGED_RECORD = "damaged_record"  # stored auth state that no longer opens


def message_received(
    *,
    message_id: str,
    chat: str,
    sender: str,
    push_name: str | None,
    text: str | None,
    timestamp: float,
    media: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``message.received``: a message as stored; ``media`` and ``extra`` only when it has them."""
    payload: dict[str, Any] = {
        "id": message_id,
        "chat": chat,
        "from": sender,
        "fromMe": False,
        "pushName": push_name,
        "text": text,
        "timestamp": timestamp,
    }
    if media:
        payload["media"] = dict(media)
    if extra:
        payload["extra"] = dict(extra)
    return payload


def engine_event(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``engine.event``: something the engine noticed that has no type of its own."""
    return {"kind": kind, "data": data}


def session_qr(expires_at: float) -> dict[str, Any]:
    """``session.qr``: a new QR code to scan (the code itself is fetched, not published)."""
    return {"expiresAt": expires_at}


def session_paired(me: Mapping[str, Any]) -> dict[str, Any]:
    """``session.paired``: the phone linked the session as ``me``."""
    return {"me": dict(me)}


def session_reset(backup: str | None) -> dict[str, Any]:
    """``session.reset``: wiped by request; ``backup``: the id of the backup kept, if any."""
    return {"cause": Cause.API.value, "backup": backup}


def quarantined(cause: Cause, backup: str | None, *, data_key: bool = False) -> dict[str, Any]:
    """``session.corrupted``: wiped and to be linked again, for ``cause``; ``backup``: the id of the backup kept.
    ``data_key``: the session's data key itself was damaged (nothing of its state opened)."""
    payload: dict[str, Any] = {"cause": cause.value, "backup": backup}
    if cause is Cause.DAMAGED_RECORD:
        payload["action"] = "quarantined"
        if data_key:
            payload["record"] = "data_key"
    return payload


def restored(backup: str) -> dict[str, Any]:
    """``session.corrupted``: the session's damaged credentials were put back from ``backup``, of the same link."""
    return {"cause": Cause.DAMAGED_RECORD.value, "action": "restored", "backup": backup}


def contact_reset(contact: str) -> dict[str, Any]:
    """``session.corrupted``: one contact's stored state was damaged; that contact's session started over."""
    return {"cause": Cause.DAMAGED_RECORD.value, "contact": contact, "action": "contact_reset"}

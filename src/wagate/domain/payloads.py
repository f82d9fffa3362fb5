"""What each event the sessions report says: the public payload of every event type, in one place beside the types.

Subscribers (webhooks, WebSockets, the event history) read these shapes; ``docs/events.md`` describes them. They are
WAHA's where WAHA has the event: ``message`` and ``message.any`` carry a ``WAMessage``, ``message.ack`` a
``WAMessageAckBody``, ``session.status`` a ``WASessionStatusBody``, ``engine.event`` an ``EnginePayload``; wagate's
own fields ride beside WAHA's. ``session.status`` and ``message.ack`` are written with the changes they report, by the
store. :func:`upgrade` reads a payload stored before they took WAHA's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from wagate.domain.content import Contacts, Location, Poll, described
from wagate.domain.events import RENAMED, compact
from wagate.domain.messages import MessageStatus
from wagate.domain.waha import ack_of, public_jid, serialize_message_id, wa_message

__all__ = [
    "Cause",
    "contact_reset",
    "engine_event",
    "me_info",
    "message",
    "message_ack",
    "own_message",
    "quarantined",
    "restored",
    "session_paired",
    "session_qr",
    "session_reset",
    "session_status",
    "upgrade",
    "upgraded",
]


def me_info(me: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The session's account as WAHA's ``MeInfo``: ``id`` (``N@c.us``), ``pushName``, ``jid`` (with the device),
    ``lid`` when known, ``reachoutTimelock`` null (no restriction seen: the engines report none); None before the
    session is linked."""
    if not me or not me.get("id"):
        return None
    jid = str(me["id"])
    info: dict[str, Any] = {"id": public_jid(jid), "pushName": me.get("pushName") or "", "jid": jid}
    info["reachoutTimelock"] = None
    if me.get("lid"):
        info["lid"] = public_jid(str(me["lid"]))
    return info


class Cause(StrEnum):
    """Why a session's state was wiped (``session.reset``) or found damaged (``session.corrupted``)."""

    API = "api"  # by request: POST /api/sessions/{name}/reset
    CORRUPTION = "corruption"  # messages from many contacts failed to decrypt
    DAMAGED_RECORD = "damaged_record"  # stored auth state that no longer opens


def message(
    *,
    message_id: str,
    chat: str,
    sender: str,
    me: str | None,
    push_name: str | None,
    text: str | None,
    timestamp: float,
    media: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    content: Location | Contacts | Poll | None = None,
    from_me: bool = False,
) -> dict[str, Any]:
    """``message``: a message someone sent to the session (``me``: its own JID, None before it is known), as WAHA's
    ``WAMessage`` (its ``media`` WAHA's ``WAMedia``: ``url`` null, the gateway keeps no files; ``mimetype``,
    ``filename``, ``size``...); the sender's ``pushName`` and what the engine told of it (``extra``) in ``_data``;
    a place in ``location``, contact cards in ``vCards``, a poll in ``_data.poll``. ``from_me``: the account sent it
    from its phone (``message.any``, ``source: app``)."""
    data = dict(extra or {})
    if push_name:
        data["pushName"] = push_name
    shown = described(content) if content is not None else {}
    if "poll" in shown:
        data["poll"] = shown["poll"]
    return wa_message(
        message_id=message_id,
        chat_id=chat,
        me=me,
        from_me=from_me,
        sender=sender,
        timestamp=timestamp,
        body=text,
        status=MessageStatus.SENT if from_me else MessageStatus.RECEIVED,
        media={"url": None, **media} if media else None,
        extra=data,
        location=shown.get("location"),
        vcards=[str(card["vcard"]) for card in shown.get("vcards", ())],
    )


def own_message(
    *, message_id: str, chat: str, me: str | None, body: Mapping[str, Any], kind: str, timestamp: float
) -> dict[str, Any]:
    """``message.any`` of a message the session sent through the API, as WAHA's ``WAMessage`` (``source: api``),
    once the server has it; ``body`` is what its sealed body holds (``domain.content.body_of``)."""
    media = body.get("media")
    return wa_message(
        message_id=message_id,
        chat_id=chat,
        me=me,
        from_me=True,
        sender=me,
        timestamp=timestamp,
        body=body.get("text") or body.get("caption"),
        status=MessageStatus.SENT,
        media={"url": None, "mimetype": media.get("mimetype"), "filename": media.get("filename")} if media else None,
        source="api",
        extra={"type": kind, **{key: body[key] for key in ("poll", "reaction") if body.get(key)}},
        location=body.get("location"),
        vcards=[str(card.get("vcard")) for card in body.get("vcards") or ()],
    )


def message_ack(
    *,
    message_id: str,
    chat: str,
    sender: str | None,
    status: MessageStatus,
    previous: MessageStatus | None,
    timestamp: float,
    error: str | None = None,
) -> dict[str, Any]:
    """``message.ack``: a sent message's progress as WAHA's ``WAMessageAckBody`` (``participant``: whose receipt, the
    chat), with wagate's ``status``, ``previous`` and ``timestamp`` beside it, and ``error`` when it failed."""
    ack = ack_of(status)
    payload: dict[str, Any] = {
        "id": serialize_message_id(True, chat, message_id),
        "from": public_jid(sender) if sender else "",
        "to": public_jid(chat),
        "participant": public_jid(chat),
        "fromMe": True,
        "ack": int(ack),
        "ackName": ack.name,
        "_data": {"id": message_id},
        "status": status.value,
        "previous": previous.value if previous else None,
        "timestamp": timestamp,
    }
    if status is MessageStatus.FAILED:
        payload["error"] = error
    return payload


def session_status(
    *,
    name: str,
    status: str,
    previous: str,
    since: float,
    at: float,
    reason: str | None,
    note: str | None,
    me: Mapping[str, Any] | None,
    actor: str,
) -> dict[str, Any]:
    """``session.status``: WAHA's ``WASessionStatusBody`` (``statuses``: the status before, since ``since``, and the
    new one, at ``at``; in ms) with wagate's ``previous``, ``reason``, ``note``, ``me`` and ``actor``."""
    return {
        "name": name,
        "status": status,
        "data": None,
        "statuses": [
            {"status": previous, "timestamp": round(since * 1000)},
            {"status": status, "timestamp": round(at * 1000)},
        ],
        "previous": previous,
        "reason": reason,
        "note": note,
        "me": dict(me) if me else None,
        "actor": actor,
    }


def engine_event(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``engine.event``: something the engine noticed that has no type of its own, as WAHA's ``EnginePayload``
    (``event``: its kind)."""
    return {"event": kind, "data": dict(data)}


def session_qr(expires_at: float) -> dict[str, Any]:
    """``session.qr``: a new QR code to scan (the code itself is fetched, not published)."""
    return {"expiresAt": expires_at}


def session_paired(me: Mapping[str, Any]) -> dict[str, Any]:
    """``session.paired``: the phone linked the session as ``me`` (WAHA's ``MeInfo``)."""
    return {"me": me_info(me)}


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


def upgrade(type: str, session: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A payload stored before payloads took WAHA's shapes (``type``: the event's name then), in today's shape with
    what was recorded then (the session's own JID was not: ``to`` or ``from`` is empty)."""
    if type == "message.received":
        return message(
            message_id=payload["id"],
            chat=payload["chat"],
            sender=payload["from"],
            me=None,
            push_name=payload.get("pushName"),
            text=payload.get("text"),
            timestamp=payload["timestamp"],
            media=payload.get("media"),
            extra=payload.get("extra"),
        )
    if type == "message.ack" and "chatId" in payload:
        previous = payload.get("previous")
        return message_ack(
            message_id=payload["id"],
            chat=payload["chatId"],
            sender=None,
            status=MessageStatus(payload["status"]),
            previous=MessageStatus(previous) if previous else None,
            timestamp=payload["timestamp"],
            error=payload.get("error"),
        )
    if type == "session.status" and "name" not in payload:
        return {"name": session, "data": None, "statuses": [], **payload}
    if type == "engine.event" and "kind" in payload:
        return {"event": payload["kind"], "data": payload.get("data") or {}}
    return payload


def upgraded(stored: str) -> tuple[str, dict[str, Any]]:
    """A stored body and its envelope, in WAHA's envelope: as it is, or, for an event stored before the envelope
    became WAHA's (``type`` for ``event``, seconds), the body it would have had, with no ``me``, ``metadata``,
    ``engine`` or ``environment`` (they were not recorded)."""
    envelope: dict[str, Any] = json.loads(stored)
    if "event" in envelope:
        return stored, envelope
    old = envelope["type"]
    event = RENAMED.get(old, old)
    new = {
        "id": envelope["id"],
        "timestamp": round(envelope["timestamp"] * 1000),
        "event": str(event),
        "session": envelope["session"],
        "metadata": None,
        "me": None,
        "payload": upgrade(old, envelope["session"], envelope["payload"]),
        "engine": None,
        "environment": None,
        "tenant": envelope["tenant"],
    }
    return compact(new), new

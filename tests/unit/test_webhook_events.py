"""Every event the gateway writes is what the OpenAPI document declares for it: a body made by the real payload
builders, stamped as the store stamps it, read by the declared model (a missing field, a wrong type or a value
outside a declared enum fails)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wagate.api.routes.webhook_events import envelope_model
from wagate.domain import payloads
from wagate.domain.events import Event, EventType, Stamp
from wagate.domain.messages import MessageStatus
from wagate.domain.payloads import Cause
from wagate.domain.waha import environment
from wagate.ids import SessionId, TenantId

ME = {"id": "15550100:7@s.whatsapp.net", "phone": "15550100", "pushName": "Sales"}
MESSAGE: dict[str, Any] = {
    "message_id": "3EB0AA",
    "chat": "15550123@s.whatsapp.net",
    "sender": "15550123@s.whatsapp.net",
    "me": ME["id"],
    "push_name": "Ann",
    "text": "hi",
    "timestamp": 1795368753.2,
}
SAMPLES: list[tuple[EventType, dict[str, Any]]] = [
    (EventType.MESSAGE, payloads.message(**MESSAGE)),
    (EventType.MESSAGE, payloads.message(**{**MESSAGE, "chat": "120363@g.us", "media": {"mimetype": "image/png"}})),
    (
        EventType.MESSAGE_ANY,
        payloads.own_message(
            message_id="3EB0BB", chat=MESSAGE["chat"], me=ME["id"], body={"text": "yo"}, kind="text", timestamp=1.0
        ),
    ),
    (
        EventType.MESSAGE_ACK,
        payloads.message_ack(
            message_id="3EB0BB",
            chat=MESSAGE["chat"],
            sender=ME["id"],
            status=MessageStatus.FAILED,
            previous=MessageStatus.SENT,
            timestamp=2.0,
            error="no",
        ),
    ),
    (
        EventType.SESSION_STATUS,
        payloads.session_status(
            name="main", status="WORKING", previous="STARTING", since=1, at=2, reason=None, note=None, me=ME, actor="x"
        ),
    ),
    (EventType.ENGINE_EVENT, payloads.engine_event("presence", {"online": True})),
    (EventType.SESSION_QR, payloads.session_qr(60.0)),
    (EventType.SESSION_PAIRED, payloads.session_paired(ME)),
    (EventType.SESSION_CORRUPTED, payloads.quarantined(Cause.DAMAGED_RECORD, "bak_1", data_key=True)),
    (EventType.SESSION_CORRUPTED, payloads.contact_reset("15550123@s.whatsapp.net")),
    (EventType.SESSION_RESET, payloads.session_reset(None)),
]


@pytest.mark.parametrize(("type", "payload"), SAMPLES, ids=[f"{t.value}-{n}" for n, (t, _) in enumerate(SAMPLES)])
def test_what_the_gateway_writes_is_what_the_document_declares(type: EventType, payload: dict[str, Any]) -> None:
    stamp = Stamp(payloads.me_info(ME), {"user.id": "1"}, "GOWS", environment("1.0", "sim", "linux/x86_64", "w1"))
    event = Event.new(type, TenantId("ten_1"), SessionId("ses_1"), "main", 1795368753.25, payload).stamped(stamp)
    declared = envelope_model(type)
    body = json.loads(event.body())
    read = declared.model_validate(body)
    assert read.model_dump(by_alias=True, exclude_unset=True) == body  # every field read back as written
    unlinked = Event.new(type, TenantId("ten_1"), SessionId("ses_1"), "main", 1.0, payload).stamped(
        Stamp(None, None, "GOWS", environment("1.0", "sim", "linux/x86_64", None))
    )
    declared.model_validate(json.loads(unlinked.body()))  # before the session is linked: no me, no metadata


def test_a_field_missing_or_out_of_its_enum_is_refused() -> None:
    stamp = Stamp(None, None, "GOWS", environment("1.0", "sim", "linux/x86_64", None))
    event = Event.new(EventType.MESSAGE_ACK, TenantId("t"), SessionId("s"), "main", 1.0, SAMPLES[3][1])
    body = json.loads(event.stamped(stamp).body())
    declared = envelope_model(EventType.MESSAGE_ACK)
    with pytest.raises(ValueError, match="participant"):
        declared.model_validate({**body, "payload": {k: v for k, v in body["payload"].items() if k != "participant"}})
    with pytest.raises(ValueError, match="event"):
        declared.model_validate({**body, "event": "message"})

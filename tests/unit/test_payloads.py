"""The public payloads of the events sessions report: the shapes subscribers read (docs/events.md)."""

from __future__ import annotations

from wagate.domain import payloads
from wagate.domain.payloads import Cause


def test_a_received_message_says_what_waha_says_and_media_only_when_there_is_some() -> None:
    plain = payloads.message_received(
        message_id="m1", chat="c@s.whatsapp.net", sender="s@s.whatsapp.net", push_name=None, text="hi", timestamp=5.0
    )
    assert plain == {
        "id": "m1",
        "chat": "c@s.whatsapp.net",
        "from": "s@s.whatsapp.net",
        "fromMe": False,
        "pushName": None,
        "text": "hi",
        "timestamp": 5.0,
    }
    media = {"mimetype": "image/png", "size": 3}
    rich = payloads.message_received(
        message_id="m2",
        chat="c",
        sender="s",
        push_name="Ann",
        text=None,
        timestamp=6.0,
        media=media,
        extra={"quoted": "m1"},
    )
    assert (rich["media"], rich["extra"], rich["pushName"]) == (media, {"quoted": "m1"}, "Ann")
    assert "media" not in payloads.message_received(
        message_id="m3", chat="c", sender="s", push_name=None, text="x", timestamp=1.0, media={}, extra={}
    )


def test_session_payloads() -> None:
    assert payloads.session_qr(12.5) == {"expiresAt": 12.5}
    assert payloads.session_paired({"id": "d", "phone": "+1", "pushName": None}) == {
        "me": {"id": "d", "phone": "+1", "pushName": None}
    }
    assert payloads.session_reset("bak_1") == {"cause": "api", "backup": "bak_1"}
    assert payloads.engine_event("presence", {"who": "x"}) == {"kind": "presence", "data": {"who": "x"}}


def test_what_a_quarantine_and_a_repair_say() -> None:
    assert payloads.quarantined(Cause.CORRUPTION, None) == {"cause": "corruption", "backup": None}
    assert payloads.quarantined(Cause.DAMAGED_RECORD, "bak_2") == {
        "cause": "damaged_record",
        "action": "quarantined",
        "backup": "bak_2",
    }
    assert payloads.quarantined(Cause.DAMAGED_RECORD, None, data_key=True) == {
        "cause": "damaged_record",
        "action": "quarantined",
        "record": "data_key",
        "backup": None,
    }
    assert payloads.restored("bak_3") == {"cause": "damaged_record", "action": "restored", "backup": "bak_3"}
    assert payloads.contact_reset("c@s") == {"cause": "damaged_record", "contact": "c@s", "action": "contact_reset"}

"""The public payloads of the events sessions report: the shapes subscribers read (docs/events.md)."""

from __future__ import annotations

import json

from wagate.domain import payloads
from wagate.domain.messages import MessageStatus
from wagate.domain.payloads import Cause


def test_a_received_message_is_waha_s_wamessage_and_media_only_when_there_is_some() -> None:
    plain = payloads.message(
        message_id="m1",
        chat="111@s.whatsapp.net",
        sender="111@s.whatsapp.net",
        me="999:4@s.whatsapp.net",
        push_name=None,
        text="hi",
        timestamp=5.7,
    )
    assert plain == {
        "id": "false_111@c.us_m1",
        "timestamp": 5,
        "from": "111@c.us",
        "fromMe": False,
        "to": "999@c.us",
        "participant": "",
        "source": "app",
        "body": "hi",
        "hasMedia": False,
        "mediaUrl": "",
        "ack": 2,
        "ackName": "DEVICE",
        "vCards": [],
        "_data": {"id": "m1"},
        "replyTo": None,
    }
    media = {"mimetype": "image/png", "size": 3}
    rich = payloads.message(
        message_id="m2",
        chat="555@g.us",
        sender="111@s.whatsapp.net",
        me=None,
        push_name="Ann",
        text=None,
        timestamp=6.0,
        media=media,
        extra={"quoted": "m1"},
    )
    assert (rich["media"], rich["hasMedia"], rich["body"]) == ({"url": None, **media}, True, "")  # WAHA's WAMedia
    assert rich["_data"] == {"id": "m2", "quoted": "m1", "pushName": "Ann"}
    assert (rich["from"], rich["participant"], rich["to"]) == ("555@g.us", "111@c.us", "")
    bare = payloads.message(
        message_id="m3", chat="c", sender="s", me=None, push_name=None, text="x", timestamp=1.0, media={}, extra={}
    )
    assert ("media" in bare, bare["hasMedia"]) == (False, False)


def test_an_ack_is_waha_s_ack_body_with_wagate_s_status() -> None:
    ack = payloads.message_ack(
        message_id="m1",
        chat="111@s.whatsapp.net",
        sender="999:4@s.whatsapp.net",
        status=MessageStatus.READ,
        previous=MessageStatus.DELIVERED,
        timestamp=7.0,
    )
    assert ack == {
        "id": "true_111@c.us_m1",
        "from": "999@c.us",
        "to": "111@c.us",
        "participant": "111@c.us",
        "fromMe": True,
        "ack": 3,
        "ackName": "READ",
        "_data": {"id": "m1"},
        "status": "read",
        "previous": "delivered",
        "timestamp": 7.0,
    }
    failed = payloads.message_ack(
        message_id="m2", chat="c", sender=None, status=MessageStatus.FAILED, previous=None, timestamp=1, error="no"
    )
    assert (failed["ack"], failed["ackName"], failed["error"], failed["from"]) == (-1, "ERROR", "no", "")


def test_a_status_change_is_waha_s_status_body() -> None:
    me = {"id": "999:4@s.whatsapp.net", "phone": "999", "pushName": "Bo"}
    body = payloads.session_status(
        name="main", status="WORKING", previous="STARTING", since=1.0, at=2.5, reason=None, note=None, me=me, actor="x"
    )
    assert body == {
        "name": "main",
        "status": "WORKING",
        "data": None,
        "statuses": [{"status": "STARTING", "timestamp": 1000}, {"status": "WORKING", "timestamp": 2500}],
        "previous": "STARTING",
        "reason": None,
        "note": None,
        "me": me,
        "actor": "x",
    }


def test_me_is_waha_s_meinfo() -> None:
    assert payloads.me_info(None) is None
    assert payloads.me_info({"id": "999:4@s.whatsapp.net", "phone": "999", "pushName": None}) == {
        "id": "999@c.us",
        "pushName": "",
        "jid": "999:4@s.whatsapp.net",
        "reachoutTimelock": None,
    }
    with_lid = payloads.me_info({"id": "999@s.whatsapp.net", "pushName": "Bo", "lid": "77:2@lid"})
    assert with_lid is not None
    assert with_lid["lid"] == "77@lid"


def test_session_payloads() -> None:
    assert payloads.session_qr(12.5) == {"expiresAt": 12.5}
    assert payloads.session_paired({"id": "999:1@s.whatsapp.net", "phone": "+1", "pushName": None}) == {
        "me": {"id": "999@c.us", "pushName": "", "jid": "999:1@s.whatsapp.net", "reachoutTimelock": None}
    }
    assert payloads.session_reset("bak_1") == {"cause": "api", "backup": "bak_1"}
    assert payloads.engine_event("presence", {"who": "x"}) == {"event": "presence", "data": {"who": "x"}}


def test_an_event_stored_in_the_old_envelope_is_read_in_waha_s() -> None:
    old = (
        '{"id":"evt_01","type":"message.received","tenant":"ten_1","session":"main","timestamp":1795368753.38,'
        '"payload":{"id":"m1","chat":"111@s.whatsapp.net","from":"111@s.whatsapp.net","fromMe":false,'
        '"pushName":"Ann","text":"hi","timestamp":1795368753.0}}'
    )
    body, envelope = payloads.upgraded(old)
    assert json.loads(body) == envelope
    assert (envelope["event"], envelope["timestamp"], envelope["session"], envelope["tenant"]) == (
        "message",
        1795368753380,
        "main",
        "ten_1",
    )
    assert (envelope["payload"]["id"], envelope["payload"]["body"], envelope["payload"]["from"]) == (
        "false_111@c.us_m1",
        "hi",
        "111@c.us",
    )
    assert (envelope["me"], envelope["engine"], envelope["metadata"], envelope["environment"]) == (None,) * 4
    ack = '{"id":"evt_02","type":"message.ack","tenant":"t","session":"s","timestamp":2.0,"payload":' + (
        '{"id":"m2","chatId":"111@s.whatsapp.net","fromMe":true,"status":"delivered","previous":"sent","timestamp":1.0}}'
    )
    assert payloads.upgraded(ack)[1]["payload"]["ackName"] == "DEVICE"
    status = '{"id":"evt_03","type":"session.status","tenant":"t","session":"s","timestamp":2.0,"payload":' + (
        '{"status":"WORKING","previous":"STARTING","reason":null,"note":null,"me":null,"actor":"supervisor"}}'
    )
    assert payloads.upgraded(status)[1]["payload"]["name"] == "s"
    note = '{"id":"evt_04","type":"engine.event","tenant":"t","session":"s","timestamp":2.0,"payload":' + (
        '{"kind":"presence","data":{"online":true}}}'
    )
    assert payloads.upgraded(note)[1]["payload"] == {"event": "presence", "data": {"online": True}}
    new = payloads.upgraded(body)
    assert new == (body, envelope)  # one in today's envelope is read as it is


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

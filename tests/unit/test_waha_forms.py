"""WAHA's forms of ids, acks and messages (wagate.domain.waha)."""

from __future__ import annotations

import pytest

from wagate.domain.messages import MessageStatus
from wagate.domain.waha import (
    Ack,
    MessageRef,
    ack_of,
    environment,
    parse_message_id,
    public_jid,
    serialize_message_id,
    wa_message,
    waha_engine,
)


@pytest.mark.parametrize(
    ("jid", "public"),
    [
        ("15550001@s.whatsapp.net", "15550001@c.us"),
        ("15550001:12@s.whatsapp.net", "15550001@c.us"),
        ("15550001.0:3@s.whatsapp.net", "15550001@c.us"),
        ("99887766@lid", "99887766@lid"),
        ("99887766:4@lid", "99887766@lid"),
        ("120363012345678901@g.us", "120363012345678901@g.us"),
        ("status@broadcast", "status@broadcast"),
        ("123@newsletter", "123@newsletter"),
    ],
)
def test_a_jid_is_given_as_waha_gives_it(jid: str, public: str) -> None:
    assert public_jid(jid) == public


def test_a_serialized_id_names_the_sender_only_in_a_group_and_only_from_someone_else() -> None:
    group = "120363012345678901@g.us"
    assert serialize_message_id(False, "1555@s.whatsapp.net", "ABC", "1555@s.whatsapp.net") == "false_1555@c.us_ABC"
    assert serialize_message_id(True, "1555@s.whatsapp.net", "ABC") == "true_1555@c.us_ABC"
    assert serialize_message_id(False, group, "ABC", "1666:2@s.whatsapp.net") == f"false_{group}_ABC_1666@c.us"
    assert serialize_message_id(True, group, "ABC", "1777@s.whatsapp.net") == f"true_{group}_ABC"


def test_a_message_id_is_read_in_both_forms() -> None:
    group = "120363012345678901@g.us"
    assert parse_message_id("3EB0AA") == MessageRef("3EB0AA")
    assert parse_message_id("true_1555@c.us_3EB0AA") == MessageRef("3EB0AA", True, "1555@c.us")
    assert parse_message_id(f"false_{group}_ABC_1666@c.us") == MessageRef("ABC", False, group, "1666@c.us")
    assert parse_message_id("maybe_1555@c.us_ABC") == MessageRef("maybe_1555@c.us_ABC")


def test_every_status_has_waha_s_ack() -> None:
    assert {status: ack_of(status) for status in MessageStatus} == {
        MessageStatus.RECEIVED: Ack.DEVICE,
        MessageStatus.PENDING: Ack.PENDING,
        MessageStatus.SENDING: Ack.PENDING,
        MessageStatus.SENT: Ack.SERVER,
        MessageStatus.DELIVERED: Ack.DEVICE,
        MessageStatus.READ: Ack.READ,
        MessageStatus.FAILED: Ack.ERROR,
    }


def test_a_sent_message_is_from_me_to_the_chat() -> None:
    message = wa_message(
        message_id="3EB0AA",
        chat_id="1555@s.whatsapp.net",
        me="1999:7@s.whatsapp.net",
        from_me=True,
        sender="1999:7@s.whatsapp.net",
        timestamp=1700000000.75,
        body="hi",
        status=MessageStatus.SENT,
        source="api",
    )
    assert message == {
        "id": "true_1555@c.us_3EB0AA",
        "timestamp": 1700000000,
        "from": "1999@c.us",
        "fromMe": True,
        "to": "1555@c.us",
        "participant": "",
        "source": "api",
        "body": "hi",
        "hasMedia": False,
        "mediaUrl": "",
        "ack": 1,
        "ackName": "SERVER",
        "vCards": [],
        "_data": {"id": "3EB0AA"},
        "replyTo": None,
    }


def test_a_group_message_from_someone_else_names_its_participant() -> None:
    message = wa_message(
        message_id="ABC",
        chat_id="120363012345678901@g.us",
        me="1999@s.whatsapp.net",
        from_me=False,
        sender="1666@s.whatsapp.net",
        timestamp=5,
        body=None,
        status=MessageStatus.RECEIVED,
        media={"mimetype": "image/png", "url": None},
        reply_to={"id": "XYZ", "hasMedia": False},
    )
    assert message["id"] == "false_120363012345678901@g.us_ABC_1666@c.us"
    assert (message["from"], message["to"]) == ("120363012345678901@g.us", "1999@c.us")
    assert message["participant"] == message["author"] == "1666@c.us"
    assert (message["body"], message["hasMedia"], message["ackName"]) == ("", True, "DEVICE")
    assert message["replyTo"] == {"id": "XYZ", "hasMedia": False}
    assert (message["source"], message["mediaUrl"]) == ("app", "")


def test_the_environment_names_the_engine_as_waha_does() -> None:
    assert environment("1.2.3", "neonize", "linux/x86_64", "w1") == {
        "version": "1.2.3",
        "engine": "GOWS",
        "tier": "WAGATE",
        "browser": "",
        "platform": "linux/x86_64",
        "worker": {"id": "w1"},
    }
    assert waha_engine("sim") == "GOWS"

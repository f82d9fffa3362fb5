"""WAHA's event names in filters: exact names, families, ``*``, ``message.any`` taking every message, and the old
names refused with the new one; the envelope an event is delivered in."""

from __future__ import annotations

import json

import pytest

from wagate.domain.events import Event, EventFilter, EventType, Stamp, compact, parse_types, renamed
from wagate.ids import SessionId, TenantId


def event(type: EventType) -> Event:
    return Event.new(type, TenantId("ten_1"), SessionId("ses_1"), "main", 12.3456, {"n": 1})


def test_message_any_takes_every_message_under_its_own_name() -> None:
    only_any = EventFilter(["message.any"])
    assert only_any.name_for("message") == "message.any"
    assert only_any.name_for("message.any") == "message.any"
    assert only_any.name_for("message.ack") is None
    assert only_any.renames(event(EventType.MESSAGE)) == "message.any"
    assert only_any.exact_types() == ["message", "message.any"]
    both = EventFilter(["message", "message.any"])
    assert both.name_for("message") == "message"  # once, under its own name
    assert both.renames(event(EventType.MESSAGE)) is None
    assert EventFilter(["message"]).name_for("message.any") is None  # the session's own messages are not "message"
    assert EventFilter(["*"]).name_for("message") == "message"


def test_a_family_takes_its_own_name_and_its_members() -> None:
    family = EventFilter(["message.*"])
    assert [family.name_for(t) for t in ("message", "message.any", "message.ack", "session.status")] == [
        "message",
        "message.any",
        "message.ack",
        None,
    ]
    assert EventFilter(["session.*"], session="main").matches(event(EventType.SESSION_QR))
    assert not EventFilter(["session.*"], session="other").matches(event(EventType.SESSION_QR))


def test_old_names_are_refused_with_the_new_one_and_unknown_ones_named() -> None:
    with pytest.raises(ValueError, match=r"'message\.received' is now 'message'"):
        parse_types(["message.received"])
    with pytest.raises(ValueError, match=r"unknown event type 'message\.bogus'"):
        parse_types(["message.bogus"])
    # WAHA's events that wagate does not emit: taken (a WAHA client's config names them), never matched.
    assert parse_types(["message.reaction", "state.change"]) == ["message.reaction", "state.change"]
    assert EventFilter(["message.reaction"]).exact_types() == []
    assert not EventFilter(["message.reaction"]).matches(event(EventType.MESSAGE))
    assert parse_types(["message", " message.any ", "*", "session.*", ""]) == [
        "message",
        "message.any",
        "*",
        "session.*",
    ]


def test_the_envelope_is_waha_s_with_the_stamp_and_a_name_for_the_subscriber() -> None:
    environment = {"version": "1", "engine": "GOWS", "tier": "WAGATE", "browser": None, "platform": "p"}
    stamped = event(EventType.MESSAGE).stamped(Stamp({"id": "9@c.us"}, {"k": "v"}, "GOWS", environment))
    envelope = stamped.envelope()
    assert list(envelope) == [
        "id",
        "timestamp",
        "event",
        "session",
        "metadata",
        "me",
        "payload",
        "engine",
        "environment",
        "tenant",
    ]
    assert (envelope["timestamp"], envelope["event"], envelope["metadata"], envelope["engine"]) == (
        12346,
        "message",
        {"k": "v"},
        "GOWS",
    )
    assert json.loads(stamped.body("message.any"))["event"] == "message.any"
    assert renamed(stamped.body(), "message.any") == stamped.body("message.any")  # byte for byte


def test_the_body_is_the_envelope_as_compact_json_byte_for_byte() -> None:
    environment = {"version": "1", "engine": "GOWS", "tier": "WAGATE", "browser": "", "worker": {"id": None}}
    stamps = [None, Stamp(None, None, "GOWS", environment), Stamp({"id": "9@c.us"}, {"ü": "ß"}, "GOWS", environment)]
    payloads = [{}, {"body": 'héllo \u2603 "quoted"', "n": 1.5, "list": [1, None, True]}]
    for stamp in stamps:
        for payload in payloads:
            made = Event.new(EventType.MESSAGE, TenantId("ten_1"), SessionId("ses_1"), "mäin", 1795368753.3805, payload)
            one = made.stamped(stamp) if stamp else made
            for name in (None, "message.any"):
                assert one.body(name) == compact(one.envelope(name))
                assert json.loads(one.body(name)) == one.envelope(name)

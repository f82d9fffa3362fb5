"""Pure messaging rules: chat ids, the forward-only status order, and the token bucket under an injected clock."""

from __future__ import annotations

import pytest

from wagate.domain.messages import MessageStatus, moves, new_message_id, normal_chat_id
from wagate.domain.ratelimit import TokenBucket

S = MessageStatus


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("+15550001", "15550001@s.whatsapp.net"),
        ("15550001", "15550001@s.whatsapp.net"),
        ("15550001@c.us", "15550001@s.whatsapp.net"),
        (" 15550001@s.whatsapp.net ", "15550001@s.whatsapp.net"),
        ("120363012345678901@g.us", "120363012345678901@g.us"),
        ("15550001-1600000000@g.us", "15550001-1600000000@g.us"),
        ("123456789012345@lid", "123456789012345@lid"),
    ],
)
def test_chat_ids_take_the_protocol_form(given: str, expected: str) -> None:
    assert normal_chat_id(given) == expected


@pytest.mark.parametrize("bad", ["", "+0123456", "12345", "abc@c.us", "1555@x.com", "15550001@g.us.evil", "@g.us"])
def test_malformed_chat_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="chat id"):
        normal_chat_id(bad)


def test_statuses_only_move_forward() -> None:
    order = [S.PENDING, S.SENDING, S.SENT, S.DELIVERED, S.READ]
    for i, old in enumerate(order):
        for j, new in enumerate(order):
            allowed = j > i or (old is S.SENDING and new is S.PENDING)
            assert moves(old, new) is allowed, (old, new)
    assert moves(S.PENDING, S.FAILED)
    assert moves(S.SENDING, S.FAILED)
    assert not moves(S.SENT, S.FAILED)
    assert not moves(S.FAILED, S.SENT)
    assert not moves(S.RECEIVED, S.READ)


def test_message_ids_look_like_a_whatsapp_clients() -> None:
    made = {new_message_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(m.startswith("3EB0") and m.isupper() and len(m) == 24 for m in made)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)  # 2 a second
    now = 100.0
    assert bucket.available(now) == 3
    bucket.take(now, 3)
    assert bucket.available(now) == 0
    assert bucket.wait(now) == pytest.approx(0.5)
    assert bucket.available(now + 0.49) == 0
    assert bucket.available(now + 0.5) == 1
    bucket.take(now + 0.5)
    assert bucket.wait(now + 0.5, 2) == pytest.approx(1.0)
    assert bucket.available(now + 3600) == 3  # never more than the burst saved up
    sent = 0
    t = 200.0
    bucket.take(t, bucket.available(t))
    while t < 260.0:  # a minute at full demand: the burst was spent, then 2 a second
        t += 0.01
        if bucket.available(t) >= 1:
            bucket.take(t)
            sent += 1
    assert 119 <= sent <= 120
    assert bucket.available(t - 10) == 0  # a clock that steps back adds nothing...
    assert bucket.available(t - 9) == 2  # ...and the rate goes on from there

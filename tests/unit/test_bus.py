"""The event bus's rule for slow subscribers: behind while the client does not read, not while this process is busy."""

from __future__ import annotations

import asyncio

import pytest

from wagate.domain.events import Committed, Event, EventFilter, EventType
from wagate.fanout.bus import HARD_LIMIT_FACTOR, LocalBus, Revoked, SlowConsumer
from wagate.ids import ApiKeyId, SessionId, TenantId

A, B = TenantId("ten_a"), TenantId("ten_b")


def commit(tenant: TenantId, count: int, start: int = 0) -> Committed:
    events = [
        Event.new(EventType.MESSAGE, tenant, SessionId("ses_1"), "main", 1.0, {"n": start + n}) for n in range(count)
    ]
    return Committed(events, [])


async def test_events_wait_in_order_while_the_sender_is_only_busy() -> None:
    bus = LocalBus()
    sub = bus.subscribe(A, EventFilter(), max_pending=4)
    for round_ in range(3):
        bus.publish(commit(A, 5, start=5 * round_))  # 15 waiting, well over 4, but the sender never blocked
    bus.publish(commit(B, 50))  # another tenant's: never seen, never counted
    assert not sub.overflowed
    got = [(await sub.next()).payload["n"]]
    while (event := sub.pop()) is not None:
        got.append(event.payload["n"])
    assert got == list(range(15))


async def test_a_subscriber_whose_client_does_not_read_is_cut_off_at_the_next_commit() -> None:
    bus = LocalBus()
    sub = bus.subscribe(A, EventFilter(), max_pending=4)
    bus.publish(commit(A, 3))
    sub.blocked = True  # the sender waits for the client to read
    bus.publish(commit(A, 3))  # 3 waited: under the limit, so this commit's events join
    assert not sub.overflowed
    bus.publish(commit(A, 1))  # 6 waited while blocked
    assert sub.overflowed
    with pytest.raises(SlowConsumer):
        sub.pop()
    with pytest.raises(SlowConsumer):
        await sub.next()


async def test_a_subscriber_far_behind_is_cut_off_even_when_not_blocked() -> None:
    bus = LocalBus()
    sub = bus.subscribe(A, EventFilter(["session.*"]), max_pending=2)
    bus.publish(commit(A, 100))  # not wanted: nothing waits
    assert not sub.overflowed
    wanted = Committed(
        [Event.new(EventType.SESSION_STATUS, A, SessionId("s"), "main", 1.0, {}) for _ in range(2 * HARD_LIMIT_FACTOR)],
        [],
    )
    bus.publish(wanted)
    assert not sub.overflowed  # one commit never cuts off: judged by what waited before it
    bus.publish(wanted)
    assert sub.overflowed
    sub.close()
    assert bus.subscribers == 0


async def test_a_revoked_key_or_deleted_tenant_cuts_its_subscribers_off_at_once() -> None:
    bus = LocalBus()
    revoked, kept, other = (
        bus.subscribe(A, EventFilter(), key_id=ApiKeyId("key_1")),
        bus.subscribe(A, EventFilter(), key_id=ApiKeyId("key_2")),
        bus.subscribe(B, EventFilter(), key_id=ApiKeyId("key_3")),
    )
    bus.publish(commit(A, 3))
    stopped: list[str] = []
    revoked.on_revoked = lambda: stopped.append("hook")  # the sender's, to stop a write that waits
    waiting = asyncio.ensure_future(revoked.next())
    assert bus.revoke(keys=[ApiKeyId("key_1")]) == 1
    assert stopped == ["hook"]
    with pytest.raises(Revoked, match="the API key was revoked"):
        await waiting  # a sender waiting for the next event hears of it
    with pytest.raises(Revoked, match="the API key was revoked"):
        revoked.pop()  # what waited is dropped
    assert (await kept.next()).payload["n"] == 0
    assert bus.revoke(tenants=[A]) == 1
    with pytest.raises(Revoked, match="the tenant was deleted"):
        await kept.next()
    assert other.revoked is None


async def test_a_subscriber_authenticated_just_before_a_revocation_is_cut_off_when_it_subscribes() -> None:
    bus = LocalBus()
    bus.revoke(keys=[ApiKeyId("key_1")], tenants=[B])
    for late in (bus.subscribe(A, EventFilter(), key_id=ApiKeyId("key_1")), bus.subscribe(B, EventFilter())):
        with pytest.raises(Revoked):
            await late.next()
    assert bus.subscribe(A, EventFilter(), key_id=ApiKeyId("key_2")).revoked is None


def test_the_keys_of_open_subscriptions_are_known_until_cut_off() -> None:
    bus = LocalBus()
    first = bus.subscribe(A, EventFilter(), key_id=ApiKeyId("key_1"))
    bus.subscribe(A, EventFilter(), key_id=ApiKeyId("key_2"))
    bus.subscribe(B, EventFilter())  # no key: nothing to check
    assert bus.key_ids() == {ApiKeyId("key_1"), ApiKeyId("key_2")}
    bus.revoke(keys=[ApiKeyId("key_2")])
    assert bus.key_ids() == {ApiKeyId("key_1")}
    first.close()
    assert bus.key_ids() == set()

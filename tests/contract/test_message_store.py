"""The message store over SQLite and PostgreSQL (real connections): inbound idempotency, the outbound queue and its
statuses, idempotency keys, chats, contacts, groups, paging, retention and deletion."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.builders import tenant_with_session
from wagate.crypto.keyring import Keyring
from wagate.domain.events import Event, EventType
from wagate.domain.messages import (
    Append,
    Contact,
    Group,
    InboundMessage,
    MessageKind,
    MessageStatus,
    NewOutbound,
    StatusUpdate,
)
from wagate.domain.sessions import Session
from wagate.errors import AlreadyExists, IdempotencyConflict, LeaseLost, QueueFull
from wagate.ids import TenantId
from wagate.store.base import Store
from wagate.store.contracts.directory import ChatOrder, NameOrder
from wagate.store.vault import Vaults

FROM = "15550100@s.whatsapp.net"


def inbound(session: Session, message_id: str, chat: str = FROM, at: float = 1000.0) -> InboundMessage:
    event = Event.new(EventType.MESSAGE, session.tenant_id, session.id, session.name, at, {"id": message_id})
    return InboundMessage(
        session.tenant_id, session.id, message_id, chat, FROM, "Ann", MessageKind.TEXT, at, b"sealed", event
    )


def outbound(session: Session, message_id: str, key: str | None = None, digest: str = "h1") -> NewOutbound:
    return NewOutbound(
        session.tenant_id,
        session.id,
        message_id,
        FROM,
        "me",
        MessageKind.TEXT,
        b"sealed-out",
        media=b"media" if message_id.endswith("M") else None,
        idem_key=key,
        idem_hash=digest if key else None,
    )


async def test_inbound_messages_are_stored_once_with_one_event_each(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    first = [inbound(session, f"M{n}", at=1000.0 + n) for n in range(3)]
    await store.sessions.set_status_many([], [], first)
    # A redelivery after a lost ack, mixed with a new message, and a duplicate inside one batch.
    again = [inbound(session, "M1"), inbound(session, "M3", at=1010.0), inbound(session, "M3", at=1010.0)]
    await store.sessions.set_status_many([], [], again)
    stored = await store.messages.list_messages(tenant, session.id, chat_id=FROM, newest_first=False)
    assert [m.id for m in stored] == ["M0", "M1", "M2", "M3"]
    assert all(m.status is MessageStatus.RECEIVED and not m.from_me for m in stored)
    events = await store.events.list_events(tenant, types=[EventType.MESSAGE.value])
    assert [e.payload["id"] for e in events] == ["M0", "M1", "M2", "M3"]
    chats = await store.directory.list_chats(tenant, session.id, limit=10)
    assert [(c.id, c.messages, c.last_message_id, c.name) for c in chats] == [(FROM, 4, "M3", "Ann")]


async def test_messages_and_the_auth_state_they_advanced_commit_together_or_not_at_all(store: Store) -> None:
    """One session still holds its lease, the other lost it: the first one's messages, events and ratchet commit in
    the same transaction; of the second nothing is written (a stale owner's ratchet must not land, and neither do
    the messages it decrypted)."""
    tenant, held = await tenant_with_session(store, "a", "held")
    _, lost = await tenant_with_session(store, "b", "lost")
    vaults = Vaults(store.auth, Keyring({"k1": bytes(32)}, "k1"))
    vault = {}
    for session in (held, lost):
        lease = await store.leases.acquire(session.id, "w1", ttl=60)
        assert lease is not None
        vault[session.id] = vaults.open(session.tenant_id, session.id, owner="w1", epoch=lease.epoch)
    stale = await store.leases.get(lost.id)
    assert stale is not None
    await store.leases.release(lost.id, "w1", stale.epoch)
    assert await store.leases.acquire(lost.id, "w2", ttl=60) is not None
    appends = [
        Append(
            inbound=[inbound(session, f"{session.name}-{n}") for n in range(3)],
            auth=await vault[session.id].sealed_write({("chain", FROM): f"{session.name} at 3".encode()}),
        )
        for session in (held, lost)
    ]
    applied, refused = await store.sessions.commit([], appends)
    assert applied == []
    assert refused[0] is None
    assert isinstance(refused[1], LeaseLost)
    assert await vault[held.id].get_many("chain", [FROM]) == {FROM: b"held at 3"}
    assert await store.auth.read_all(lost.tenant_id, lost.id) == []
    stored = await store.messages.list_messages(tenant, held.id, chat_id=FROM, newest_first=False)
    assert [m.id for m in stored] == ["held-0", "held-1", "held-2"]
    assert await store.messages.list_messages(lost.tenant_id, lost.id, chat_id=FROM, newest_first=False) == []
    assert len(await store.events.list_events(tenant)) == 3
    assert await store.events.list_events(lost.tenant_id) == []


async def test_only_the_lease_holder_moves_a_message_to_sending_and_only_once(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    for n in range(3):
        await store.messages.enqueue(outbound(session, f"OUT{n}"), max_queued=10)
    lease = await store.leases.acquire(session.id, "w#1", 30)
    assert lease is not None
    first = await store.messages.mark_sending(tenant, session.id, ["OUT0", "OUT1"], owner="w#1", epoch=lease.epoch)
    assert sorted(first) == ["OUT0", "OUT1"]
    # A second sender of the same worker (or one racing it) gets what is still pending only: nothing is sent twice.
    again = await store.messages.mark_sending(
        tenant, session.id, ["OUT0", "OUT1", "OUT2"], owner="w#1", epoch=lease.epoch
    )
    assert again == ["OUT2"]
    # A worker whose lease has moved on moves nothing, and is told so.
    with pytest.raises(LeaseLost):
        await store.messages.mark_sending(tenant, session.id, ["OUT2"], owner="w#1", epoch=lease.epoch + 1)
    with pytest.raises(LeaseLost):
        await store.messages.mark_sending(tenant, session.id, ["OUT2"], owner="w#2", epoch=lease.epoch)
    statuses = {m.id: (m.status, m.attempts) for m in await store.messages.queued(tenant, session.id, 10)}
    assert statuses == dict.fromkeys(("OUT0", "OUT1", "OUT2"), (MessageStatus.SENDING, 1))


async def test_outbound_statuses_only_move_forward_with_an_event_each(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    message, created = await store.messages.enqueue(outbound(session, "OUT1M"), max_queued=10)
    assert created
    assert message.status is MessageStatus.PENDING
    assert await store.messages.media(tenant, session.id, "OUT1M") == b"media"
    lease = await store.leases.acquire(session.id, "w#1", 30)
    assert lease is not None
    assert await store.messages.mark_sending(tenant, session.id, ["OUT1M"], owner="w#1", epoch=lease.epoch) == ["OUT1M"]
    assert [m.status for m in await store.messages.queued(tenant, session.id, 10)] == [MessageStatus.SENDING]

    def update(status: MessageStatus) -> StatusUpdate:
        return StatusUpdate(tenant, session.id, session.name, "OUT1M", status, timestamp=2000.0)

    changed = await store.messages.update_status(
        [update(MessageStatus.SENT), update(MessageStatus.DELIVERED), update(MessageStatus.SENT)]
    )
    assert [m.status for m in changed] == [MessageStatus.DELIVERED]
    assert await store.messages.update_status([update(MessageStatus.FAILED)]) == []  # sent already: not failed
    await store.messages.update_status([update(MessageStatus.READ)])
    got = await store.messages.get(tenant, session.id, "OUT1M")
    assert got is not None
    assert got.status is MessageStatus.READ
    assert got.attempts == 1
    assert got.timestamp == 2000.0
    assert await store.messages.media(tenant, session.id, "OUT1M") is None  # sent: the media is not kept
    assert await store.messages.queued(tenant, session.id, 10) == []
    acks = await store.events.list_events(tenant, types=[EventType.MESSAGE_ACK.value])
    assert [(e.payload["status"], e.payload["previous"]) for e in acks] == [
        ("sent", None),
        ("delivered", "sent"),
        ("read", "delivered"),
    ]


async def test_concurrent_enqueues_keep_each_ones_answer_and_order(store: Store) -> None:
    """Requests queued at the same time share transactions; each still gets its own answer: queued in the order
    they came, the same key's first message, its id taken, or the queue full, and one's refusal is not another's."""
    tenant, session = await tenant_with_session(store, "a")
    _, other = await tenant_with_session(store, "b")
    requests = [
        outbound(session, "A0", key="k1"),
        outbound(session, "A1M"),
        outbound(session, "A2", key="k1"),  # the same key as A0, in the same batch: A0 is the answer
        outbound(session, "A1M"),  # an id taken earlier in the batch
        outbound(session, "A3"),
        outbound(session, "A5"),  # the queue's fourth message: over the bound
        outbound(other, "B0"),
        outbound(session, "A4", key="k1", digest="other"),  # the key again, for another request
    ]
    answers = await asyncio.gather(*(store.messages.enqueue(r, max_queued=3) for r in requests), return_exceptions=True)
    assert [(a[0].id, a[1]) if isinstance(a, tuple) else type(a) for a in answers] == [
        ("A0", True),
        ("A1M", True),
        ("A0", False),
        AlreadyExists,
        ("A3", True),
        QueueFull,
        ("B0", True),
        IdempotencyConflict,
    ]
    queued = await store.messages.queued(tenant, session.id, 10)
    assert [m.id for m in queued] == ["A0", "A1M", "A3"]
    assert queued[0].seq < queued[1].seq < queued[2].seq
    assert await store.messages.media(tenant, session.id, "A1M") == b"media"
    assert [m.id for m in await store.messages.queued(other.tenant_id, other.id, 10)] == ["B0"]
    chats = await store.directory.list_chats(tenant, session.id, limit=10)
    assert [(c.id, c.messages) for c in chats] == [(FROM, 3)]


async def test_idempotency_keys_and_the_queue_bound(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    first, created = await store.messages.enqueue(outbound(session, "A", key="k1"), max_queued=2)
    replay, again = await store.messages.enqueue(outbound(session, "B", key="k1"), max_queued=2)
    assert created
    assert not again
    assert replay.id == first.id == "A"
    with pytest.raises(IdempotencyConflict):
        await store.messages.enqueue(outbound(session, "C", key="k1", digest="other"), max_queued=2)
    await store.messages.enqueue(outbound(session, "D"), max_queued=2)
    with pytest.raises(QueueFull):
        await store.messages.enqueue(outbound(session, "E"), max_queued=2)
    # A replay is answered even when the queue is full; failing the queue empties it.
    assert (await store.messages.enqueue(outbound(session, "F", key="k1"), max_queued=2))[0].id == "A"
    assert await store.messages.fail_queued(tenant, session.id, session.name, "logged out") == 2
    failed = await store.messages.get(tenant, session.id, "D")
    assert failed is not None
    assert failed.status is MessageStatus.FAILED
    assert failed.error == "logged out"
    await store.messages.enqueue(outbound(session, "E"), max_queued=2)


async def test_pages_have_no_gaps_or_duplicates_and_tenants_are_apart(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    other, theirs = await tenant_with_session(store, "b")
    await store.sessions.set_status_many([], [], [inbound(session, f"M{n:03}", at=1000.0 + n) for n in range(25)])
    await store.sessions.set_status_many([], [], [inbound(theirs, "X1")])
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.messages.list_messages(tenant, session.id, chat_id=FROM, cursor=cursor, limit=7)
        if not page:
            break
        seen.extend(m.id for m in page)
        cursor = (page[-1].timestamp, page[-1].seq)
    assert seen == [f"M{n:03}" for n in reversed(range(25))]
    by_offset = [
        await store.messages.list_messages(tenant, session.id, chat_id=FROM, offset=o, limit=7) for o in (0, 7)
    ]
    assert [m.id for page in by_offset for m in page] == seen[:14]
    window = await store.messages.list_messages(tenant, session.id, chat_id=None, since=1005.0, until=1008.0)
    assert [m.id for m in window] == ["M008", "M007", "M006", "M005"]  # both ends inclusive
    assert await store.messages.list_messages(other, session.id, chat_id=None) == []
    assert await store.messages.get(other, session.id, "M001") is None


async def test_messages_sort_by_their_time_and_filter_by_direction_and_status(store: Store) -> None:
    """A message that arrives late (its time older than one stored before) takes its place by time, in both
    directions and across a cursor; ``from_me`` and ``statuses`` filter, ``get_many`` finds by id."""
    tenant, session = await tenant_with_session(store, "a")
    await store.sessions.set_status_many([], [], [inbound(session, "NEW", at=2000.0)])
    await store.sessions.set_status_many([], [], [inbound(session, "OLD", at=1000.0)])
    await store.messages.enqueue(outbound(session, "OUT"), max_queued=10)  # queued now: the newest
    listed = await store.messages.list_messages(tenant, session.id, chat_id=FROM)
    assert [m.id for m in listed] == ["OUT", "NEW", "OLD"]
    oldest_first = await store.messages.list_messages(tenant, session.id, chat_id=FROM, newest_first=False)
    assert [m.id for m in oldest_first] == ["OLD", "NEW", "OUT"]
    after = (listed[1].timestamp, listed[1].seq)
    assert [m.id for m in await store.messages.list_messages(tenant, session.id, chat_id=FROM, cursor=after)] == ["OLD"]
    mine = await store.messages.list_messages(tenant, session.id, chat_id=FROM, from_me=True)
    theirs = await store.messages.list_messages(tenant, session.id, chat_id=FROM, from_me=False)
    assert ([m.id for m in mine], [m.id for m in theirs]) == (["OUT"], ["NEW", "OLD"])
    pending = await store.messages.list_messages(tenant, session.id, chat_id=FROM, statuses={MessageStatus.PENDING})
    assert [m.id for m in pending] == ["OUT"]
    assert await store.messages.list_messages(tenant, session.id, chat_id=FROM, statuses=set()) == []
    found = await store.messages.get_many(tenant, session.id, ["OLD", "OUT", "GONE"])
    assert sorted(found) == ["OLD", "OUT"]
    assert await store.messages.get_many(tenant, session.id, []) == {}
    assert await store.messages.get_many(TenantId("ten_other"), session.id, ["OLD"]) == {}


async def test_a_message_id_taken_in_the_session_is_refused(store: Store) -> None:
    _, session = await tenant_with_session(store, "a")
    await store.messages.enqueue(outbound(session, "SAME"), max_queued=10)
    with pytest.raises(AlreadyExists):
        await store.messages.enqueue(outbound(session, "SAME"), max_queued=10)


async def test_chats_contacts_and_groups_sort_and_page_by_offset_and_cursor(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    people = [f"1555010{n}@s.whatsapp.net" for n in range(4)]
    names = ["Dora", None, "Bob", "Cy"]
    contacts = [Contact(p, n, None, 1.0) for p, n in zip(people, names, strict=True)]
    await store.directory.put_contacts(tenant, session.id, contacts)
    groups = [Group(f"12036300000000000{n}@g.us", s, people[:n], 1.0) for n, s in enumerate(["Zeta", None, "Alpha"])]
    await store.directory.put_groups(tenant, session.id, groups)
    await store.sessions.set_status_many(
        [], [], [inbound(session, f"M{n}", chat=p, at=1000.0 + n) for n, p in enumerate(people)]
    )
    directory = store.directory
    recent = await directory.list_chats(tenant, session.id, limit=10)
    assert [c.id for c in recent] == people[::-1]
    by_name = await directory.list_chats(tenant, session.id, limit=10, order=ChatOrder.NAME, descending=False)
    assert [c.name for c in by_name] == ["Bob", "Cy", "Dora", None]  # a chat without a name last
    page_two = await directory.list_chats(tenant, session.id, limit=2, offset=2)
    after = await directory.list_chats(tenant, session.id, limit=2, cursor=(recent[1].last_message_at, recent[1].id))
    assert page_two == after == recent[2:]
    by_id = await directory.list_chats(
        tenant, session.id, limit=2, order=ChatOrder.ID, descending=False, cursor=people[0]
    )
    assert [c.id for c in by_id] == people[1:3]
    chosen = await directory.list_chats(tenant, session.id, limit=10, ids=[people[2], "nobody@s.whatsapp.net"])
    assert [c.id for c in chosen] == [people[2]]
    named = await directory.list_contacts(tenant, session.id, limit=10, order=NameOrder.NAME, descending=True)
    assert [c.name for c in named] == ["Dora", "Cy", "Bob", None]  # no name last, whichever the direction
    tail = await directory.list_contacts(tenant, session.id, limit=10, offset=1, descending=True)
    assert [c.id for c in tail] == people[2::-1]
    assert [c.id for c in await directory.list_contacts(tenant, session.id, limit=2, cursor=people[1])] == people[2:]
    found = await directory.get_contact(tenant, session.id, people[0])
    assert found is not None
    assert (found.id, found.name, found.push_name) == (FROM, "Dora", "Ann")  # its push name from its message
    assert await directory.get_contact(tenant, session.id, "nobody@s.whatsapp.net") is None
    assert await directory.get_contact(TenantId("ten_other"), session.id, people[0]) is None
    subjects = await directory.list_groups(tenant, session.id, limit=10, order=NameOrder.NAME)
    assert [g.subject for g in subjects] == ["Alpha", "Zeta", None]
    assert [g.id for g in await directory.list_groups(tenant, session.id, limit=1, offset=1, descending=True)] == [
        groups[1].id
    ]
    assert [g.id for g in await directory.list_groups(tenant, session.id, limit=5, cursor=groups[0].id)] == [
        g.id for g in groups[1:]
    ]


async def test_contacts_groups_and_chat_names(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    group = "120363000000000001@g.us"
    await store.directory.put_contacts(tenant, session.id, [Contact(FROM, "Ann B.", None, 1.0)])
    await store.directory.put_groups(tenant, session.id, [Group(group, "Team", [FROM], 1.0)])
    await store.sessions.set_status_many(
        [], [], [inbound(session, "G1", chat=group, at=1001.0), inbound(session, "U1")]
    )
    chats = await store.directory.list_chats(tenant, session.id, limit=10)
    assert [(c.id, c.name, c.is_group) for c in chats] == [(group, "Team", True), (FROM, "Ann B.", False)]
    page = await store.directory.list_chats(tenant, session.id, limit=1, cursor=(chats[0].last_message_at, group))
    assert [c.id for c in page] == [FROM]
    contacts = await store.directory.list_contacts(tenant, session.id, limit=10)
    assert [(c.id, c.name, c.push_name) for c in contacts] == [(FROM, "Ann B.", "Ann")]
    groups = await store.directory.list_groups(tenant, session.id, limit=10)
    assert [(g.id, g.subject, g.participants) for g in groups] == [(group, "Team", [FROM])]


async def test_retention_prunes_old_messages_and_deletion_removes_everything(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    await store.sessions.set_status_many([], [], [inbound(session, "OLD")])
    await store.messages.enqueue(outbound(session, "QUEUED"), max_queued=10)
    assert await store.messages.prune_all_tenants(now=10**12) == 0  # no retention set: kept
    updated = await store.tenants.update(tenant, {"message_retention_days": 1.0})
    assert updated is not None
    assert updated.message_retention_days == 1.0
    await store.sessions.set_status_many([], [], [inbound(session, f"OLD{n}") for n in range(4)])
    assert await store.messages.prune_all_tenants(now=10**12, chunk=2) == 5  # in three transactions; the queued stays
    left = await store.messages.list_messages(tenant, session.id, chat_id=None)
    assert [m.id for m in left] == ["QUEUED"]
    assert await store.sessions.delete(tenant, session.name)
    assert await store.messages.list_messages(tenant, session.id, chat_id=None) == []
    assert await store.directory.list_chats(tenant, session.id, limit=10) == []

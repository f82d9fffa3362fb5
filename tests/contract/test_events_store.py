"""The event history, webhook endpoints, outbox and tickets, over SQLite and PostgreSQL (real connections)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.builders import tenant_with_session
from wagate.domain.events import Committed, Event, EventType
from wagate.domain.sessions import Session, Status, StatusChange
from wagate.domain.tenants import Role
from wagate.domain.webhooks import DeliveryState, WebhookChange
from wagate.errors import QuotaExceeded
from wagate.ids import ApiKeyId, TenantId, WebhookId
from wagate.store.base import Store
from wagate.store.sql.db import Database
from wagate.store.sql.deliveries import list_query, pending_before_query, scan_query


def message(session: Session, n: int, at: float = 1000.0) -> Event:
    return Event.new(EventType.MESSAGE, session.tenant_id, session.id, session.name, at, {"n": n})


async def test_events_commit_with_the_status_change_and_only_with_it(store: Store) -> None:
    tenant, session = await tenant_with_session(store, "a")
    heard: list[Committed] = []
    store.events.listeners.append(heard.append)
    lease = await store.leases.acquire(session.id, "w#1", 30)
    assert lease is not None
    extra = message(session, 1)
    change = StatusChange(tenant, session.id, "w#1", lease.epoch, Status.WORKING, events=(extra,))
    fenced = StatusChange(tenant, session.id, "w#1", lease.epoch + 7, Status.FAILED, events=(message(session, 2),))
    applied = await store.sessions.set_status_many([change, fenced])
    assert applied[0] is not None
    assert applied[1] is None  # a stale epoch: neither the change nor its events
    stored = await store.events.list_events(tenant)
    assert [(e.type, e.payload.get("status"), e.payload.get("n")) for e in stored] == [
        (EventType.SESSION_STATUS, Status.WORKING.value, None),
        (EventType.MESSAGE, None, 1),
    ]
    assert stored[0].payload["previous"] == Status.STOPPED.value
    assert [e.id for e in heard[-1].events] == [e.id for e in stored]


async def test_history_filters_pages_and_isolates_tenants(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    b, sb = await tenant_with_session(store, "b")
    await store.events.append([message(sa, n) for n in range(5)])
    await store.events.append([message(sb, 99)])
    qr = Event.new(EventType.SESSION_QR, a, sa.id, sa.name, 1001.0, {"expiresAt": 1060.0})
    await store.events.append([qr])
    every = await store.events.list_events(a)
    assert [e.payload.get("n") for e in every] == [0, 1, 2, 3, 4, None]
    assert all(e.tenant_id == a for e in every)
    assert [e.id for e in every] == sorted(e.id for e in every)
    page = await store.events.list_events(a, after=every[1].id, limit=2)
    assert [e.payload["n"] for e in page] == [2, 3]
    assert [e.type for e in await store.events.list_events(a, types=["session.qr"])] == [EventType.SESSION_QR]
    assert [e.payload["n"] for e in await store.events.list_events(b)] == [99]
    assert await store.events.list_events(a, session_id=sb.id) == []


async def test_webhook_limit_secret_and_deliveries_only_for_matching_endpoints(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    b, sb = await tenant_with_session(store, "b")
    every = await store.webhooks.create(a, "https://x.test/all", ["*"], None, "whsec_a", limit=2)
    await store.webhooks.create(a, "https://x.test/qr", ["session.qr"], None, "whsec_b", limit=2)
    with pytest.raises(QuotaExceeded):
        await store.webhooks.create(a, "https://x.test/3", ["*"], None, "whsec_c", limit=2)
    other = await store.webhooks.create(b, "https://x.test/b", ["message.*"], "s", "whsec_d", limit=2)
    assert [w.id for w in await store.webhooks.list_webhooks(b)] == [other.id]
    assert await store.webhooks.get(b, every.id) is None  # another tenant's endpoint does not exist for b
    found = await store.webhooks.secret_all_tenants(every.id)
    assert found is not None
    assert (found.secret, found.headers, found.webhook.id) == ("whsec_a", (), every.id)

    heard: list[Committed] = []
    store.events.listeners.append(heard.append)
    await store.events.append([message(sa, 1), message(sb, 2)])
    deliveries = heard[-1].deliveries
    assert sorted((d.delivery.webhook_id, d.delivery.tenant_id) for d in deliveries) == sorted(
        [(every.id, a), (other.id, b)]
    )
    for out in deliveries:  # the body is the envelope, exactly as stored
        assert json.loads(out.body)["tenant"] == out.delivery.tenant_id
    # A disabled endpoint gets no new deliveries.
    await store.webhooks.set_disabled(a, every.id, "410")
    await store.events.append([message(sa, 3)])
    assert heard[-1].deliveries == []


async def test_claim_takes_whole_groups_in_order_and_respects_other_workers(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    hook = await store.webhooks.create(a, "https://x.test/h", ["*"], None, "whsec_x", limit=5)
    await store.events.append([message(sa, n) for n in range(6)])
    mine = await store.outbox.claim("w1#a", takeover="w1#", ttl=30, limit=100)
    assert [json.loads(o.body)["payload"]["n"] for o in mine] == list(range(6))
    assert all(o.delivery.webhook_id == hook.id for o in mine)
    # Another live worker sees the group held and takes nothing, not even a later row.
    assert await store.outbox.claim("w2#a", takeover="w2#", ttl=30, limit=100) == []
    # What w1 sends is not taken again by w1; what it lost track of is.
    held = {o.delivery.seq for o in mine[:2]}
    again = await store.outbox.claim("w1#a", takeover="w1#", ttl=30, limit=100, held=held.__contains__)
    assert again == []  # the group's head is held: nothing behind it may overtake
    again = await store.outbox.claim("w1#a", takeover="w1#", ttl=30, limit=100, held=lambda seq: False)
    assert len(again) == 6
    # A later run of w1 takes over at once; w2 takes over once the claims expire.
    assert len(await store.outbox.claim("w1#b", takeover="w1#", ttl=30, limit=100)) == 6
    await store.outbox.release("w1#b", [o.delivery.seq for o in mine])
    assert len(await store.outbox.claim("w2#a", takeover="w2#", ttl=30, limit=3)) == 3


async def test_retry_time_blocks_the_group_and_dead_letters_redeliver(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    hook = await store.webhooks.create(a, "https://x.test/h", ["*"], None, "whsec_x", limit=5)
    await store.events.append([message(sa, n) for n in range(3)])
    first, *_ = await store.outbox.claim("w#1", takeover="w#", ttl=30, limit=100)
    await store.outbox.mark_failed(
        first.delivery.seq, attempts=1, next_attempt_at=4e12, status=500, error="HTTP 500", dead=False
    )
    await store.outbox.release("w#1", [first.delivery.seq + 1, first.delivery.seq + 2])
    # The head waits for its retry: its followers wait too, for order.
    assert await store.outbox.claim("w#2", takeover="w#", ttl=30, limit=100) == []
    assert await store.outbox.pending_before(hook.id, sa.id, first.delivery.seq + 1)
    await store.outbox.mark_failed(
        first.delivery.seq, attempts=11, next_attempt_at=0, status=500, error="HTTP 500", dead=True
    )
    rest = await store.outbox.claim("w#2", takeover="w#", ttl=30, limit=100)
    assert [o.delivery.seq for o in rest] == [first.delivery.seq + 1, first.delivery.seq + 2]
    await store.outbox.mark_delivered([o.delivery.seq for o in rest], 204)
    dead = await store.outbox.list_deliveries(a, hook.id, state=DeliveryState.DEAD, limit=10)
    assert [(d.seq, d.attempts, d.last_status) for d in dead] == [(first.delivery.seq, 11, 500)]
    delivered = await store.outbox.list_deliveries(a, hook.id, state=DeliveryState.DELIVERED, limit=10)
    assert [d.seq for d in delivered] == [first.delivery.seq + 2, first.delivery.seq + 1]  # newest first
    b = await store.tenants.create("b", contact_email=None, max_sessions=None)
    assert await store.outbox.redeliver(b.id, hook.id, None) == 0  # not b's
    assert await store.outbox.redeliver(a, hook.id, [first.delivery.seq]) == 1
    again = await store.outbox.claim("w#3", takeover="w#", ttl=30, limit=100)
    assert [(o.delivery.seq, o.delivery.attempts, o.delivery.event_id) for o in again] == [
        (first.delivery.seq, 0, first.delivery.event_id)
    ]


async def test_the_outbox_lookups_read_their_own_indexes(store: Store) -> None:
    """The pending and dead-letter indexes are partial: PostgreSQL's generic plans reach them only with their
    condition written as a literal (a bound parameter would leave a scan of every delivery the retention keeps)."""
    a, session = await tenant_with_session(store, "a")
    hook = await store.webhooks.create(a, "https://x.test/h", ["*"], None, "whsec_x", limit=5)
    await store.events.append([message(session, n) for n in range(20)])
    queries = {
        "ix_deliveries_due": scan_query(0, 1000),
        "ix_deliveries_queue": pending_before_query(hook.id, session.id, 10),
        "ix_deliveries_webhook": list_query(a, hook.id, None, 50, None),
        "ix_deliveries_dead": list_query(a, hook.id, DeliveryState.DEAD, 50, None),
    }
    db: Database = store.db  # type: ignore[attr-defined]
    async with db.write() as conn:
        for n, (index, query) in enumerate(queries.items()):
            compiled = query.compile(dialect=conn.dialect)  # as it runs: its parameters bound, not inlined
            params = [compiled.params[name] for name in compiled.positiontup or ()]
            if db.dialect == "sqlite":
                rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, tuple(params))
            else:
                # As a prepared statement is planned once it has run a few times: generic, blind to the values
                # (and only the choice between indexes under test, not whether one beats a scan of 20 rows).
                await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                await conn.exec_driver_sql(f"PREPARE plan_{n} AS {compiled.string}")
                values = ", ".join(
                    str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'" for v in params
                )
                rows = await conn.exec_driver_sql(f"EXPLAIN EXECUTE plan_{n}({values})")
            plan = " | ".join(str(row[-1]) for row in rows)
            assert index in plan, (index, plan)


async def _key(store: Store, tenant: TenantId, name: str = "k") -> ApiKeyId:
    key = await store.api_keys.create(tenant_id=tenant, role=Role.TENANT, name=name, key_hash=name, prefix="wag_")
    return key.id


async def test_tickets_are_single_use_and_expire(store: Store) -> None:
    a, _ = await tenant_with_session(store, "a")
    key = await _key(store, a)
    await store.tickets.issue(a, key, "hash-1", expires_at=4e12)
    await store.tickets.issue(a, key, "hash-2", expires_at=1.0)
    assert await store.tickets.redeem("hash-1") == (a, key)
    assert await store.tickets.redeem("hash-1") is None
    assert await store.tickets.redeem("hash-2") is None
    assert await store.tickets.redeem("unknown") is None


async def test_a_ticket_stops_working_with_its_key(store: Store) -> None:
    a = (await store.tenants.create("a", contact_email=None, max_sessions=None)).id
    revoked, kept = await _key(store, a, "revoked"), await _key(store, a, "kept")
    for n, key in enumerate((revoked, revoked, kept)):
        await store.tickets.issue(a, key, f"hash-{n}", expires_at=4e12)
    assert await store.api_keys.revoke(revoked, tenant_id=a)
    assert await store.tickets.redeem("hash-0") is None
    assert await store.tickets.redeem("hash-1") is None  # refused, and used up
    assert await store.tickets.redeem("hash-2") == (a, kept)
    await store.tickets.issue(a, kept, "hash-3", expires_at=4e12)
    assert await store.tenants.delete(a)  # with its keys
    assert await store.tickets.redeem("hash-3") is None


async def test_deleting_a_session_or_webhook_removes_its_events_and_deliveries(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    hook = await store.webhooks.create(a, "https://x.test/h", ["*"], None, "whsec_x", limit=5)
    await store.events.append([message(sa, 1)])
    assert await store.webhooks.delete(a, hook.id)
    assert await store.outbox.claim("w#1", takeover="w#", ttl=30, limit=10) == []
    assert await store.sessions.delete(a, sa.name)
    assert await store.events.list_events(a) == []


async def test_pruning_keeps_what_a_pending_delivery_needs(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    await store.webhooks.create(a, "https://x.test/h", ["message.*"], None, "whsec_x", limit=5)
    old = [message(sa, 1, at=100.0), message(sa, 2, at=100.0)]
    await store.events.append(old)
    status_only = Event.new(EventType.SESSION_RESET, a, sa.id, sa.name, 100.0, {})
    await store.events.append([message(sa, 3, at=5000.0), status_only])
    claimed = await store.outbox.claim("w#1", takeover="w#", ttl=30, limit=10)
    await store.outbox.mark_delivered([claimed[0].delivery.seq], 200)
    # ``updated_at`` of the finished delivery is the store clock's now, so prune with a cutoff in the future for
    # deliveries; the pending one keeps its event.
    removed = await store.events.prune_all_tenants(before=4e12)
    left = await store.events.list_events(a)
    assert [e.payload.get("n") for e in left] == [2, 3]
    assert removed == 2


async def test_pruning_goes_in_chunks_until_nothing_old_is_left(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    await store.webhooks.create(a, "https://x.test/h", ["message.*"], None, "whsec_x", limit=5)
    await store.events.append([message(sa, n, at=100.0) for n in range(7)] + [message(sa, 7, at=5000.0)])
    claimed = await store.outbox.claim("w#1", takeover="w#", ttl=30, limit=10)
    await store.outbox.mark_delivered([c.delivery.seq for c in claimed], 200)
    assert await store.events.prune_all_tenants(before=1000.0, chunk=3) == 0  # their deliveries are recent
    assert await store.events.prune_all_tenants(before=4e12, chunk=3) == 8
    assert await store.events.list_events(a) == []
    assert await store.outbox.claim("w#1", takeover="w#", ttl=30, limit=10) == []


async def test_backups_keep_the_newest_and_stay_with_their_tenant(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    b, _ = await tenant_with_session(store, "b")
    made = []
    for n in range(5):
        made.append(await store.backups.add(a, sa.id, reason=f"r{n}", records=n, payload=bytes([n]) * 10, keep=3))
        await asyncio.sleep(0.002)  # distinct creation times
    listed = await store.backups.list_backups(a, sa.id)
    assert [x.id for x in listed] == [m.id for m in reversed(made[2:])]
    assert (listed[0].reason, listed[0].records, listed[0].size) == ("r4", 4, 10)
    assert await store.backups.payload(a, sa.id, made[4].id) == bytes([4]) * 10
    assert await store.backups.payload(a, sa.id, made[0].id) is None  # rotated out
    assert await store.backups.payload(b, sa.id, made[4].id) is None  # not b's
    assert await store.backups.list_backups(b, sa.id) == []
    assert await store.backups.reseal_all_tenants(lambda p: p + b"!" if p[0] == 3 else None) == 1
    assert await store.backups.payload(a, sa.id, made[3].id) == bytes([3]) * 10 + b"!"


async def test_one_commit_of_many_events_keeps_their_order_in_history_and_deliveries(store: Store) -> None:
    """Events written together (one multi-row insert) get sequence numbers in the order they were made, and so do
    their deliveries to each endpoint: delivery order per session follows them."""
    a, sa = await tenant_with_session(store, "a")
    first = await store.webhooks.create(a, "https://x.test/1", ["*"], None, "whsec_1", limit=5)
    second = await store.webhooks.create(a, "https://x.test/2", ["message.*"], None, "whsec_2", limit=5)
    heard: list[Committed] = []
    store.events.listeners.append(heard.append)
    made = [message(sa, n) for n in range(300)]
    await store.events.append(made)
    (committed,) = heard
    assert [e.id for e in committed.events] == [e.id for e in made]
    listed = await store.events.list_events(a, limit=1000)
    assert [e.id for e in listed] == [e.id for e in made]
    for hook in (first, second):
        mine = [out for out in committed.deliveries if out.delivery.webhook_id == hook.id]
        assert [out.delivery.event_id for out in mine] == [e.id for e in made]
        seqs = [out.delivery.seq for out in mine]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)


async def test_a_webhook_changes_in_place_and_its_headers_stay_sealed(store: Store) -> None:
    a, sa = await tenant_with_session(store, "a")
    b, _ = await tenant_with_session(store, "b")
    headers = (("authorization", "Bearer s3cr3t-value"), ("x-route", "eu-1"))
    hook = await store.webhooks.create(a, "https://x.test/h", ["*"], None, "whsec_x", limit=5, headers=headers)
    assert hook.header_names == ("authorization", "x-route")
    got = await store.webhooks.get(a, hook.id)
    assert got is not None
    assert got.header_names == ("authorization", "x-route")
    found = await store.webhooks.secret_all_tenants(hook.id)
    assert found is not None
    assert (found.secret, found.headers) == ("whsec_x", headers)

    await store.events.append([message(sa, 1)])  # a delivery queued before the change stays queued
    assert await store.webhooks.update(b, hook.id, WebhookChange(url="https://x.test/b")) is None  # not b's
    changed = await store.webhooks.update(
        a, hook.id, WebhookChange(url="https://x.test/new", events=["message.*"], session="s")
    )
    assert changed is not None
    assert (changed.url, changed.events, changed.session, changed.header_names) == (
        "https://x.test/new",
        ["message.*"],
        "s",
        ("authorization", "x-route"),  # untouched: not in the change
    )
    assert changed.updated_at >= hook.updated_at
    found = await store.webhooks.secret_all_tenants(hook.id)
    assert found is not None
    assert (found.secret, found.headers, found.webhook.url) == ("whsec_x", headers, "https://x.test/new")
    pending = await store.outbox.list_deliveries(a, hook.id, state=DeliveryState.PENDING, limit=10)
    assert len(pending) == 1

    replaced = await store.webhooks.update(a, hook.id, WebhookChange(headers=(("x-other", "1"),), session=None))
    assert replaced is not None
    assert (replaced.session, replaced.header_names) == (None, ("x-other",))
    cleared = await store.webhooks.update(a, hook.id, WebhookChange(headers=()))
    assert cleared is not None
    assert cleared.header_names == ()
    found = await store.webhooks.secret_all_tenants(hook.id)
    assert found is not None
    assert (found.secret, found.headers) == ("whsec_x", ())  # the secret survives every change
    assert await store.webhooks.update(a, WebhookId("wh_missing"), WebhookChange(url="https://x.test/")) is None

"""The store contract, run over SQLite and PostgreSQL (real connections)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from wagate.domain.sessions import Desired, HistoryKind, NewSession, Quotas, Reason, Status, StatusChange
from wagate.domain.tenants import Role
from wagate.errors import AlreadyExists, Conflict, QuotaExceeded
from wagate.ids import SessionId, TenantId
from wagate.store import open_store
from wagate.store.base import Store
from wagate.store.sql import SqlStore

QUOTAS = Quotas(per_tenant=5, total=100)


def new(tenant: TenantId, name: str, desired: Desired = Desired.RUNNING) -> NewSession:
    return NewSession(tenant_id=tenant, name=name, engine="sim", config={"metadata": {"k": "v"}}, desired=desired)


async def test_migrations_applied_and_idempotent(store: Store) -> None:
    from wagate.store.sql.migrations import LATEST_VERSION, migrate

    assert await store.is_migrated()
    assert isinstance(store, SqlStore)
    assert await migrate(store.db) == LATEST_VERSION  # a second start applies nothing and fails nothing
    assert await store.ping() >= 0


async def test_tenants_unique_names_and_delete(store: Store) -> None:
    a = await store.tenants.create("acme", contact_email="ops@acme.test", max_sessions=None)
    with pytest.raises(AlreadyExists):
        await store.tenants.create("acme", contact_email=None, max_sessions=None)
    assert await store.tenants.get(a.id) == a
    assert [t.id for t in await store.tenants.list_all()] == [a.id]
    await store.sessions.create(new(a.id, "s1"), quotas=QUOTAS, actor="test")
    with pytest.raises(Conflict):
        await store.tenants.delete(a.id)
    assert await store.sessions.delete(a.id, "s1")
    assert await store.tenants.delete(a.id)
    assert await store.tenants.get(a.id) is None
    assert not await store.tenants.delete(a.id)


async def test_api_keys_find_list_revoke(store: Store) -> None:
    a = await store.tenants.create("a", contact_email=None, max_sessions=None)
    b = await store.tenants.create("b", contact_email=None, max_sessions=None)
    ka = await store.api_keys.create(tenant_id=a.id, role=Role.TENANT, name="x", key_hash="h-a", prefix="wag_a")
    kb = await store.api_keys.create(tenant_id=b.id, role=Role.TENANT, name="x", key_hash="h-b", prefix="wag_b")
    assert not await store.api_keys.has_admin()
    await store.api_keys.create(tenant_id=None, role=Role.ADMIN, name="root", key_hash="h-admin", prefix="wag_r")
    assert await store.api_keys.has_admin()
    found = await store.api_keys.find_active("h-a")
    assert found is not None
    assert found.tenant_id == a.id
    assert found.role is Role.TENANT
    assert [k.id for k in await store.api_keys.list_keys(a.id)] == [ka.id]
    assert len(await store.api_keys.list_keys(None)) == 3
    # A tenant cannot revoke another tenant's key.
    assert not await store.api_keys.revoke(kb.id, tenant_id=a.id)
    assert await store.api_keys.find_active("h-b") is not None
    assert await store.api_keys.revoke(kb.id, tenant_id=b.id)
    assert await store.api_keys.revoke(kb.id, tenant_id=b.id)  # idempotent
    assert await store.api_keys.find_active("h-b") is None


async def test_session_lifecycle_records_history(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    created = await store.sessions.create(new(t.id, "main"), quotas=QUOTAS, actor="api")
    assert created.status is Status.STOPPED
    assert created.desired is Desired.RUNNING
    assert created.id.startswith("ses_")
    stopped = await store.sessions.set_desired(t.id, "main", Desired.STOPPED, actor="api")
    assert stopped is not None
    assert stopped.desired is Desired.STOPPED
    restarted = await store.sessions.set_desired(t.id, "main", Desired.RUNNING, actor="api", restart=True)
    assert restarted is not None
    assert restarted.generation == 1
    configured = await store.sessions.update_config(t.id, "main", {"metadata": {"a": "b"}}, actor="api")
    assert configured is not None
    assert configured.config == {"metadata": {"a": "b"}}
    assert configured.generation == 2
    lease = await store.leases.acquire(created.id, "w1", ttl=30)
    assert lease is not None
    (working,) = await store.sessions.set_status_many(
        [StatusChange(t.id, created.id, "w1", lease.epoch, Status.WORKING, me={"id": "15550001@s.whatsapp.net"})]
    )
    assert working is not None
    assert working.me == {"id": "15550001@s.whatsapp.net"}
    (failed,) = await store.sessions.set_status_many(
        [StatusChange(t.id, created.id, "w1", lease.epoch, Status.FAILED, Reason.LOGGED_OUT, note="phone logout")]
    )
    assert failed is not None
    assert failed.reason is Reason.LOGGED_OUT
    assert failed.me == working.me

    history = await store.sessions.history(t.id, created.id, limit=100)
    kinds = [e.kind for e in reversed(history)]
    assert kinds == [
        HistoryKind.CREATED,
        HistoryKind.DESIRED,
        HistoryKind.DESIRED,
        HistoryKind.CONFIG,
        HistoryKind.STATUS,
        HistoryKind.STATUS,
    ]
    last = history[0]
    assert (last.from_status, last.to_status, last.reason, last.actor) == (
        Status.WORKING,
        Status.FAILED,
        Reason.LOGGED_OUT,
        "supervisor",
    )
    older = await store.sessions.history(t.id, created.id, limit=2, before=history[1].id)
    assert [e.id for e in older] == [history[2].id, history[3].id]


async def test_sessions_are_scoped_to_their_tenant(store: Store) -> None:
    a = await store.tenants.create("a", contact_email=None, max_sessions=None)
    b = await store.tenants.create("b", contact_email=None, max_sessions=None)
    sa = await store.sessions.create(new(a.id, "same"), quotas=QUOTAS, actor="api")
    sb = await store.sessions.create(new(b.id, "same"), quotas=QUOTAS, actor="api")  # names are per tenant
    assert sa.id != sb.id
    assert await store.sessions.get_by_id(b.id, sa.id) is None
    lease = await store.leases.acquire(sa.id, "w", ttl=30)
    assert lease is not None
    assert await store.sessions.set_status_many([StatusChange(b.id, sa.id, "w", lease.epoch, Status.WORKING)]) == [None]
    assert await store.sessions.history(b.id, sa.id, limit=10) == []
    assert [s.id for s in await store.sessions.list_sessions(a.id)] == [sa.id]
    with pytest.raises(AlreadyExists):
        await store.sessions.create(new(a.id, "same"), quotas=QUOTAS, actor="api")
    assert await store.sessions.delete(b.id, "same")
    assert await store.sessions.get(a.id, "same") == sa


async def test_quotas_hold_under_concurrent_creates(store: Store) -> None:
    a = await store.tenants.create("a", contact_email=None, max_sessions=None)
    b = await store.tenants.create("b", contact_email=None, max_sessions=None)
    results = await asyncio.gather(
        *(store.sessions.create(new(a.id, f"s{i}"), quotas=Quotas(3, 100), actor="api") for i in range(8)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, BaseException))
    assert await store.sessions.count(a.id) == 3
    with pytest.raises(QuotaExceeded) as total:
        await store.sessions.create(new(b.id, "x"), quotas=Quotas(5, 3), actor="api")
    assert total.value.code == "total_quota_exceeded"


async def test_reconcile_set_across_tenants(store: Store) -> None:
    a = await store.tenants.create("a", contact_email=None, max_sessions=None)
    b = await store.tenants.create("b", contact_email=None, max_sessions=None)
    run_a = await store.sessions.create(new(a.id, "r"), quotas=QUOTAS, actor="api")
    await store.sessions.create(new(a.id, "s", Desired.STOPPED), quotas=QUOTAS, actor="api")
    run_b = await store.sessions.create(new(b.id, "r"), quotas=QUOTAS, actor="api")
    failed = await store.sessions.create(new(b.id, "f"), quotas=QUOTAS, actor="api")
    left_working = await store.sessions.create(new(b.id, "w", Desired.STOPPED), quotas=QUOTAS, actor="api")
    leases = await store.leases.acquire_many([failed.id, left_working.id], "w1", ttl=30)
    await store.sessions.set_status_many(
        [
            StatusChange(b.id, failed.id, "w1", leases[failed.id].epoch, Status.FAILED, Reason.CONFLICT),
            StatusChange(b.id, left_working.id, "w1", leases[left_working.id].epoch, Status.WORKING),
        ]
    )
    listed = await store.sessions.list_to_reconcile_all_tenants()
    # Running and not failed, or meant to be stopped but not stopped yet.
    assert sorted(s.id for s in listed) == sorted([run_a.id, run_b.id, left_working.id])
    restarted = await store.sessions.set_desired(b.id, "f", Desired.RUNNING, actor="api", restart=True)
    assert restarted is not None
    assert (restarted.status, restarted.reason, restarted.note) == (Status.STOPPED, None, None)


async def test_leases_epochs_and_expiry(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    s = await store.sessions.create(new(t.id, "x"), quotas=QUOTAS, actor="api")
    first = await store.leases.acquire(s.id, "w1", ttl=30)
    assert first is not None
    assert first.epoch == 1
    again = await store.leases.acquire(s.id, "w1", ttl=30)
    assert again is not None
    assert again.epoch == 1
    assert await store.leases.acquire(s.id, "w2", ttl=30) is None
    assert await store.leases.renew(s.id, "w1", 1, ttl=30)
    await store.leases.release(s.id, "w1", 1)
    taken = await store.leases.acquire(s.id, "w2", ttl=30)
    assert taken is not None
    assert taken.epoch == 2
    assert not await store.leases.renew(s.id, "w1", 1, ttl=30)
    expired = await store.leases.acquire(s.id, "w2", ttl=-1)  # already expired: anyone may take it
    assert expired is not None
    stolen = await store.leases.acquire(s.id, "w3", ttl=30)
    assert stolen is not None
    assert stolen.epoch == 3
    current = await store.leases.get(s.id)
    assert current is not None
    assert current.owner == "w3"


async def test_a_claim_goes_by_the_committed_row_not_by_a_listing(store: Store) -> None:
    """A session listed to run that FAILED since (its runner wrote it and released the lease) is not claimed to
    run; one listed to stop that has stopped since is not claimed to settle; the others are."""
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    failing = await store.sessions.create(new(t.id, "failing"), quotas=QUOTAS, actor="api")
    running = await store.sessions.create(new(t.id, "running"), quotas=QUOTAS, actor="api")
    stopping = await store.sessions.create(new(t.id, "stopping"), quotas=QUOTAS, actor="api")
    ids = [failing.id, running.id, stopping.id]
    held = await store.leases.acquire_many(ids, "w1", ttl=30)
    await store.sessions.set_status_many([StatusChange(t.id, i, "w1", held[i].epoch, Status.WORKING) for i in ids])
    listed = {s.id for s in await store.sessions.list_to_reconcile_all_tenants()}
    assert listed == set(ids)
    await store.sessions.set_status_many(
        [StatusChange(t.id, failing.id, "w1", held[failing.id].epoch, Status.FAILED, Reason.LOGGED_OUT)]
    )
    await store.sessions.set_desired(t.id, "stopping", Desired.STOPPED, actor="api")
    for session_id in ids:
        await store.leases.release(session_id, "w1", held[session_id].epoch)
    to_run = await store.leases.acquire_many(ids, "w2", ttl=30, wanted=Desired.RUNNING)
    assert set(to_run) == {running.id}
    to_settle = await store.leases.acquire_many(ids, "w2", ttl=30, wanted=Desired.STOPPED)
    assert set(to_settle) == {stopping.id}  # WORKING, to stop: not settled yet
    await store.sessions.set_status_many(
        [StatusChange(t.id, stopping.id, "w2", to_settle[stopping.id].epoch, Status.STOPPED, Reason.USER)]
    )
    await store.leases.release(stopping.id, "w2", to_settle[stopping.id].epoch)
    assert await store.leases.acquire_many([stopping.id], "w3", ttl=30, wanted=Desired.STOPPED) == {}
    assert set(await store.leases.acquire_many([stopping.id], "w3", ttl=30)) == {stopping.id}  # free, unasked
    failed_lease = await store.leases.get(failing.id)
    assert failed_lease is not None
    assert failed_lease.owner is None  # nobody claimed the failed one


async def test_racing_acquirers_get_one_owner(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    s = await store.sessions.create(new(t.id, "x"), quotas=QUOTAS, actor="api")
    leases = await asyncio.gather(*(store.leases.acquire(s.id, f"w{i}", ttl=30) for i in range(6)))
    owners = {lease.owner for lease in leases if lease is not None}
    assert len(owners) == 1


async def test_delete_session_removes_everything(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    s = await store.sessions.create(new(t.id, "x"), quotas=QUOTAS, actor="api")
    lease = await store.leases.acquire(s.id, "w", ttl=30)
    assert lease is not None
    await store.auth.write(t.id, s.id, owner="w", epoch=lease.epoch, upserts={("creds", "me"): b"sealed"})
    assert await store.sessions.delete(t.id, "x")
    assert await store.auth.read_all(t.id, s.id) == []
    assert await store.leases.get(s.id) is None
    assert await store.sessions.history(t.id, s.id, limit=10) == []
    assert await store.sessions.get(t.id, "x") is None


async def test_unknown_session_changes_return_none(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    assert await store.sessions.set_desired(t.id, "nope", Desired.RUNNING, actor="api") is None
    assert await store.sessions.update_config(t.id, "nope", {}, actor="api") is None
    gone = StatusChange(t.id, SessionId("ses_nope"), "w", 1, Status.WORKING)
    assert await store.sessions.set_status_many([gone]) == [None]
    assert not await store.sessions.delete(t.id, "nope")


async def test_status_writes_are_fenced_and_batched(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    quotas = Quotas(10, 100)
    sessions = [await store.sessions.create(new(t.id, f"s{i}"), quotas=quotas, actor="api") for i in range(4)]
    leases = await store.leases.acquire_many([s.id for s in sessions], "w1", ttl=30)
    assert sorted(leases) == sorted(s.id for s in sessions)
    # Another worker takes s0 over: w1's write for it must not land, the others must, in one call.
    await store.leases.release(sessions[0].id, "w1", leases[sessions[0].id].epoch)
    assert await store.leases.acquire(sessions[0].id, "w2", ttl=30) is not None
    changes = [StatusChange(t.id, s.id, "w1", leases[s.id].epoch, Status.STARTING) for s in sessions]
    changes.append(
        StatusChange(t.id, sessions[1].id, "w1", leases[sessions[1].id].epoch, Status.WORKING, me={"id": "x"})
    )
    results = await store.sessions.set_status_many(changes)
    assert results[0] is None
    assert [r.status if r else None for r in results[1:]] == [Status.STARTING] * 3 + [Status.WORKING]
    s1 = await store.sessions.get(t.id, "s1")
    assert s1 is not None
    assert (s1.status, s1.me) == (Status.WORKING, {"id": "x"})
    history = await store.sessions.history(t.id, sessions[1].id, limit=10)
    assert [(e.from_status, e.to_status) for e in history[:2]] == [
        (Status.STARTING, Status.WORKING),
        (Status.STOPPED, Status.STARTING),
    ]
    s0 = await store.sessions.get(t.id, "s0")
    assert s0 is not None
    assert s0.status is Status.STOPPED
    for name in ("s2", "s3"):
        other = await store.sessions.get(t.id, name)
        assert other is not None
        assert other.status is Status.STARTING


async def test_lease_takeover_of_an_earlier_run_and_renew_all(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    ids = [(await store.sessions.create(new(t.id, f"s{i}"), quotas=Quotas(10, 100), actor="api")).id for i in range(3)]
    first = await store.leases.acquire_many(ids, "host#boot1", ttl=30)
    assert len(first) == 3
    assert await store.leases.acquire_many(ids, "other#x", ttl=30) == {}
    again = await store.leases.acquire_many(ids, "host#boot2", ttl=30, takeover="host#")
    assert {sid: lease.epoch for sid, lease in again.items()} == {sid: first[sid].epoch + 1 for sid in ids}
    assert await store.leases.renew_all("host#boot1", ttl=30) == set()
    assert await store.leases.renew_all("host#boot2", ttl=30) == set(ids)
    assert await store.leases.release_all("host#boot2") == 3
    assert await store.leases.renew_all("host#boot2", ttl=30) == set()


async def test_lease_limit_takes_ours_whatever_it_says(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    ids = [(await store.sessions.create(new(t.id, f"s{i}"), quotas=Quotas(10, 100), actor="api")).id for i in range(5)]
    first = await store.leases.acquire_many(ids, "a#1", ttl=30, limit=2)
    assert set(first) == set(ids[:2])  # free ones in the order asked for
    more = await store.leases.acquire_many(ids, "a#1", ttl=30, limit=1)
    assert set(more) == set(ids[:3])  # ours (epochs kept) and one more free one
    assert {sid: more[sid].epoch for sid in ids[:2]} == {sid: first[sid].epoch for sid in ids[:2]}
    assert await store.leases.acquire_many(ids[:3], "b#1", ttl=30) == {}
    assert await store.leases.acquire_many(ids, "b#1", ttl=30, limit=0) == {}
    later = await store.leases.acquire_many(ids, "a#2", ttl=30, takeover="a#", limit=0)
    assert set(later) == set(ids[:3])  # an earlier run's leases are ours too
    rest = await store.leases.acquire_many(list(reversed(ids)), "b#1", ttl=30, limit=5)
    assert set(rest) == set(ids[3:])


async def test_live_workers_and_their_leases(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    ids = [(await store.sessions.create(new(t.id, f"s{i}"), quotas=Quotas(10, 100), actor="api")).id for i in range(4)]
    assert await store.workers.beat("a#1", ttl=30) == {"a#1": 0}
    await store.leases.acquire_many(ids[:3], "a#1", ttl=30)
    await store.leases.acquire_many(ids[3:], "gone#1", ttl=30)  # a lease whose worker never said it was alive
    assert await store.workers.beat("b#1", ttl=30) == {"a#1": 3, "b#1": 0}
    assert await store.workers.beat("a#1", ttl=30) == {"a#1": 3, "b#1": 0}  # a second beat is no second worker
    await store.leases.acquire_many(ids[2:3], "a#1", ttl=-1)  # renewed into the past: expired
    assert await store.workers.beat("c#1", ttl=0.2) == {"a#1": 2, "b#1": 0, "c#1": 0}
    await store.workers.leave("b#1")
    await asyncio.sleep(0.3)  # c#1 stops beating
    assert await store.workers.beat("a#1", ttl=30) == {"a#1": 2}
    # Gone, but seen lately: a sign that this installation runs several workers.
    assert await store.workers.recent_workers(3600, besides="a#") == 2
    assert await store.workers.recent_workers(3600, besides="x#") == 3
    assert await store.workers.recent_workers(0.1, besides="a#") == 0
    assert await store.leases.release_all("a#1") == 3
    assert await store.workers.beat("a#1", ttl=30) == {"a#1": 0}


async def test_a_worker_lives_as_long_as_its_leases(store: Store) -> None:
    """A worker that stops renewing leaves the live workers when its leases lapse (not later: the others would
    count it, and hand sessions over toward a dead worker's share), and the earliest lapse of others' leases is
    known to the ones that take them over."""
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    ids = [(await store.sessions.create(new(t.id, f"s{i}"), quotas=Quotas(10, 100), actor="api")).id for i in range(3)]
    started = time.time()
    assert await store.workers.beat("a#1", ttl=0.5) == {"a#1": 0}
    await store.leases.acquire_many(ids[:2], "a#1", ttl=0.5)
    assert await store.workers.beat("a#1", ttl=30) == {"a#1": 2}  # a beat is no renewal: it names the live ones
    assert await store.workers.beat("b#1", ttl=30) == {"a#1": 2, "b#1": 0}
    third = await store.leases.acquire(ids[2], "b#1", ttl=30)
    assert third is not None
    lapse = await store.leases.next_lapse(besides="b#1", after=started)
    assert lapse is not None
    assert started < lapse <= time.time() + 0.5  # a#1's leases, not b#1's own
    assert await store.leases.next_lapse(besides="b#1", after=lapse) is None
    await asyncio.sleep(0.6)  # a#1 stops renewing
    assert await store.workers.beat("b#1", ttl=30) == {"b#1": 1}  # gone with its leases
    assert await store.leases.renew_all("a#1", ttl=30) == set(ids[:2])  # back (it was only paused): alive again
    assert await store.workers.beat("b#1", ttl=30) == {"a#1": 2, "b#1": 1}
    held = await store.leases.held([*ids, SessionId("ses_none")])
    assert set(held) == set(ids)
    assert {held[i].owner for i in ids} == {"a#1", "b#1"}
    assert all(started <= held[i].acquired_at <= time.time() and held[i].live(time.time()) for i in ids)


async def test_connected_at_marks_the_last_time_a_session_became_working(store: Store) -> None:
    tenant = await store.tenants.create("t", contact_email=None, max_sessions=None)
    session = await store.sessions.create(new(tenant.id, "s"), quotas=QUOTAS, actor="test")
    assert session.connected_at is None
    lease = await store.leases.acquire(session.id, "w#1", 30)
    assert lease is not None

    async def to(status: Status) -> float | None:
        (after,) = await store.sessions.set_status_many(
            [StatusChange(tenant.id, session.id, "w#1", lease.epoch, status)]
        )
        assert after is not None
        stored = await store.sessions.get(tenant.id, "s")
        assert stored is not None
        assert stored.connected_at == after.connected_at
        return after.connected_at

    assert await to(Status.STARTING) is None
    first = await to(Status.WORKING)
    assert first is not None
    assert await to(Status.WORKING) == first  # still the same connection
    await asyncio.sleep(0.01)
    assert await to(Status.STARTING) == first  # kept while away
    second = await to(Status.WORKING)
    assert second is not None
    assert second > first


async def test_sqlite_connections_are_durable_and_keep_temporary_data_in_memory(tmp_path: Path) -> None:
    """Every SQLite connection, writer and readers: WAL, full sync, foreign keys, and statement journals in memory
    (on disk they cost a system call per page: ten thousand status changes in one transaction wrote 145,000)."""
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'wagate.db'}")
    try:
        assert isinstance(store, SqlStore)
        expected = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "temp_store": 2}
        async with store.db.write() as conn:
            written = {name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar() for name in expected}
        async with store.db.read() as conn:
            read = {name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar() for name in expected}
    finally:
        await store.close()
    assert written == expected
    assert read == expected


async def test_existing_sessions_are_found_across_tenants(store: Store) -> None:
    found = []
    for name in ("a", "b"):
        tenant = await store.tenants.create(f"t-{name}", contact_email=None, max_sessions=None)
        found.append(
            (
                await store.sessions.create(
                    NewSession(tenant.id, "s", "sim", {}, Desired.STOPPED), quotas=QUOTAS, actor="test"
                )
            ).id
        )
    strangers = [f"ses_{n:026d}" for n in range(1200)]  # more than one statement's worth
    assert await store.sessions.existing_all_tenants([*strangers, *found, found[0]]) == set(found)
    assert await store.sessions.existing_all_tenants([]) == set()

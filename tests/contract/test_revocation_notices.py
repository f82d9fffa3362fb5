"""Revocations reach every process's open streams: the store announces a revoked key or a deleted tenant in the
transaction that makes the change (PostgreSQL), and each process checks its streams' keys against the store after it
(re)listens and periodically, so that a notice it missed (its listening connection was down) closes them all the
same. Real stores on SQLite and PostgreSQL; two stores on one PostgreSQL schema stand for two processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text, update

from tests.support.services import pg_url
from wagate.domain.events import Announced, EventFilter
from wagate.domain.sessions import Desired, NewSession, Quotas
from wagate.domain.tenants import Role
from wagate.errors import Conflict
from wagate.fanout.bus import LocalBus, Subscription
from wagate.fanout.peers import PeerEvents
from wagate.ids import ApiKeyId, TenantId
from wagate.store import open_store
from wagate.store.base import Store
from wagate.store.sql import SqlStore, schema
from wagate.store.sql.announcements import channel

pytestmark = pytest.mark.timeout(60)


async def _key(store: Store, tenant: TenantId, name: str) -> ApiKeyId:
    key = await store.api_keys.create(tenant_id=tenant, role=Role.TENANT, name=name, key_hash=name, prefix=name[:4])
    return key.id


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until ``condition()`` holds; how long it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} after {timeout} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
async def other(pg_schema: str) -> AsyncIterator[Store]:
    """Another process's store on the same PostgreSQL schema."""
    opened = await open_store(pg_url(), schema=pg_schema)
    yield opened
    await opened.close()


@pytest.fixture
async def pg_store(other: Store, pg_schema: str) -> AsyncIterator[Store]:
    opened = await open_store(pg_url(), schema=pg_schema)
    yield opened
    await opened.close()


async def test_valid_among_names_the_keys_that_still_work(store: Store) -> None:
    a = (await store.tenants.create("a", contact_email=None, max_sessions=None)).id
    b = (await store.tenants.create("b", contact_email=None, max_sessions=None)).id
    kept, revoked, of_deleted = await _key(store, a, "kept"), await _key(store, a, "revoked"), await _key(store, b, "b")
    assert await store.api_keys.valid_among({kept, revoked, of_deleted}) == {kept, revoked, of_deleted}
    assert await store.api_keys.revoke(revoked, tenant_id=a)
    assert await store.tenants.delete(b)
    unknown = ApiKeyId("key_01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert await store.api_keys.valid_among([kept, revoked, of_deleted, unknown]) == {kept}
    assert await store.api_keys.valid_among([]) == set()
    many = [await _key(store, a, f"k{n}") for n in range(3)]
    assert await store.api_keys.valid_among([*many, *(ApiKeyId(f"key_{n:026d}") for n in range(1200))]) == set(many)


async def test_a_revocation_is_announced_with_its_commit_whoever_revokes(pg_store: Store, other: Store) -> None:
    a = (await pg_store.tenants.create("a", contact_email=None, max_sessions=None)).id
    key = await _key(pg_store, a, "k")
    heard: list[Announced] = []
    async with pg_store.peers.listen(heard.append) as alive:
        assert alive is not None
        assert await other.api_keys.revoke(key, tenant_id=a)
        await _until(lambda: any(key in n.revoked_keys for n in heard), 5, "no notice of the revoked key")
        assert await other.tenants.delete(a)
        await _until(lambda: any(a in n.deleted_tenants for n in heard), 5, "no notice of the deleted tenant")
        # Nothing is announced of what did not change: an unknown key, another tenant's key, a tenant with sessions.
        before = len(heard)
        b = (await other.tenants.create("b", contact_email=None, max_sessions=None)).id
        new = NewSession(b, "s", "sim", {}, desired=Desired.STOPPED)
        await other.sessions.create(new, quotas=Quotas(per_tenant=10, total=100), actor="test")
        assert not await other.api_keys.revoke(ApiKeyId("key_01JZZZZZZZZZZZZZZZZZZZZZZZ"), tenant_id=None)
        with pytest.raises(Conflict, match="session"):
            await other.tenants.delete(b)
        assert await other.api_keys.revoke(await _key(other, b, "kb"), tenant_id=b)
        await _until(lambda: len(heard) > before, 5, "no notice of the last revocation")
        assert [n.revoked_keys for n in heard[before:]] == [heard[-1].revoked_keys]
        assert not any(n.deleted_tenants for n in heard[before:])


async def _listener_pid(store: Store, schema_name: str) -> int:
    """The backend of the connection that listens on this installation's channel."""
    assert isinstance(store, SqlStore)
    query = text("SELECT pid FROM pg_stat_activity WHERE query = :listen AND pid <> pg_backend_pid()")
    deadline = time.monotonic() + 10
    while True:
        async with store.db.read() as conn:
            pids = (await conn.execute(query, {"listen": f'LISTEN "{channel(schema_name)}"'})).scalars().all()
        if len(pids) == 1:
            return int(pids[0])
        assert time.monotonic() < deadline, f"listening backends: {pids}"
        await asyncio.sleep(0.05)


async def _terminate(store: Store, pid: int) -> None:
    """Cut a backend's connection, and wait until it is gone."""
    assert isinstance(store, SqlStore)
    async with store.db.write() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
    deadline = time.monotonic() + 10
    while True:
        async with store.db.read() as conn:
            found = (await conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})).first()
        if found is None:
            return
        assert time.monotonic() < deadline, "the backend did not end"
        await asyncio.sleep(0.05)


def _stream(bus: LocalBus, tenant: TenantId, key: ApiKeyId) -> Subscription:
    return bus.subscribe(tenant, EventFilter(), key_id=key)


async def test_a_notice_sent_while_the_listener_was_down_is_made_up_for_when_it_listens_again(
    pg_store: Store, other: Store, pg_schema: str
) -> None:
    a = (await pg_store.tenants.create("a", contact_email=None, max_sessions=None)).id
    revoked, kept = await _key(pg_store, a, "revoked"), await _key(pg_store, a, "kept")
    bus = LocalBus()
    streams = _stream(bus, a, revoked), _stream(bus, a, kept)
    # No periodic check within the test: only the check made on listening again can close the stream.
    peers = PeerEvents(pg_store, bus, "w#holder", recheck_interval=3600, relisten_pause=0.5)
    peers.start()
    try:
        await _until(lambda: peers.listening, 10, "not listening")
        await _terminate(other, await _listener_pid(other, pg_schema))
        assert await other.api_keys.revoke(revoked, tenant_id=a)  # its notice goes to no one of ours
        assert streams[0].revoked is None
        await _until(lambda: streams[0].revoked is not None, 20, "the stream of the revoked key is still open")
        assert streams[0].revoked == "the API key was revoked"
        assert peers.listening
        assert streams[1].revoked is None
    finally:
        await peers.stop()


async def test_the_periodic_check_closes_a_stream_whose_notice_never_came(store: Store) -> None:
    """The key is revoked behind the store's back (no notice on either backend): the periodic check finds it."""
    a = (await store.tenants.create("a", contact_email=None, max_sessions=None)).id
    revoked, kept = await _key(store, a, "revoked"), await _key(store, a, "kept")
    bus = LocalBus()
    streams = _stream(bus, a, revoked), _stream(bus, a, kept)
    peers = PeerEvents(store, bus, "w#holder", recheck_interval=0.2)
    peers.start()
    try:
        await asyncio.sleep(0.5)  # the first checks find both keys valid
        assert streams[0].revoked is None
        assert isinstance(store, SqlStore)
        async with store.db.write() as conn:
            keys = schema.api_keys
            await conn.execute(update(keys).where(keys.c.id == revoked).values(revoked_at=1.0))
        took = await _until(lambda: streams[0].revoked is not None, 5, "the stream of the revoked key is still open")
        assert took < 2.0
        assert streams[0].revoked == "the API key was revoked"
        late = _stream(bus, a, revoked)  # authenticated just before: cut off as it subscribes
        assert late.revoked is not None
        assert streams[1].revoked is None
    finally:
        await peers.stop()


async def test_a_notice_heard_closes_the_streams_at_once(pg_store: Store, other: Store) -> None:
    a = (await pg_store.tenants.create("a", contact_email=None, max_sessions=None)).id
    b = (await pg_store.tenants.create("b", contact_email=None, max_sessions=None)).id
    revoked, kept, of_b = (
        await _key(pg_store, a, "revoked"),
        await _key(pg_store, a, "kept"),
        await _key(pg_store, b, "b"),
    )
    bus = LocalBus()
    streams = _stream(bus, a, revoked), _stream(bus, a, kept), _stream(bus, b, of_b)
    peers = PeerEvents(pg_store, bus, "w#holder", recheck_interval=3600)
    peers.start()
    try:
        await _until(lambda: peers.listening, 10, "not listening")
        assert await other.api_keys.revoke(revoked, tenant_id=a)
        assert await _until(lambda: streams[0].revoked is not None, 5, "still open") < 1.0
        assert await other.tenants.delete(b)
        assert await _until(lambda: streams[2].revoked is not None, 5, "still open") < 1.0
        assert streams[2].revoked == "the tenant was deleted"
        assert streams[1].revoked is None
    finally:
        await peers.stop()

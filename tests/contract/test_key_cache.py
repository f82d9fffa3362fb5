"""The API's key cache on real stores: a key is looked up once while it is trusted, forgotten at once at every
revocation the event bus hears (this process's, and on PostgreSQL another process's, through the store's notice),
and read again when its time is up where no notice comes. Two stores on one PostgreSQL schema stand for two
processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.builders import make_settings
from tests.support.services import pg_url
from wagate.api.keycache import KeyCache
from wagate.domain.tenants import Action, KeyScope, Role
from wagate.fanout.bus import LocalBus
from wagate.fanout.peers import PeerEvents
from wagate.ids import TenantId
from wagate.services.accounts import IssuedKey, issue_key
from wagate.store import open_store
from wagate.store.base import Store

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _tenant_key(store: Store, name: str) -> tuple[TenantId, IssuedKey]:
    tenant = (await store.tenants.create(name, contact_email=None, max_sessions=None)).id
    return tenant, await issue_key(store, tenant_id=tenant, role=Role.TENANT, name=name)


def _cache(store: Store, tmp_path: Path, bus: LocalBus, clock: Callable[[], float], ttl: float) -> KeyCache:
    cache = KeyCache(store, make_settings(tmp_path), ttl=ttl, clock=clock)
    bus.revocation_listeners.append(cache.forget)
    return cache


async def test_a_key_is_trusted_for_its_time_then_read_again(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    cache = _cache(store, tmp_path, LocalBus(), clock, ttl=1.0)
    tenant, issued = await _tenant_key(store, "a")
    found = await cache.principal(issued.secret)
    assert found is not None
    assert (found.role, found.tenant_id, found.key_id) == (Role.TENANT, tenant, issued.key.id)
    # Switched off behind the cache's back (no notice: as another tool on SQLite would): trusted until its time is up.
    await store.api_keys.update(issued.key.id, tenant_id=tenant, role=Role.TENANT, scope=KeyScope(), active=False)
    assert await cache.principal(issued.secret) == found
    clock.now += 1.01
    assert await cache.principal(issued.secret) is None
    # Switched on again: an unknown (or switched-off) key was not remembered, so it works at the next request.
    await store.api_keys.update(issued.key.id, tenant_id=tenant, role=Role.TENANT, scope=KeyScope(), active=True)
    assert await cache.principal(issued.secret) == found
    assert await cache.principal("wag_not-a-key") is None
    assert await cache.principal(None) is None
    assert await cache.principal("") is None


async def test_every_revocation_the_bus_hears_is_forgotten_at_once(store: Store, tmp_path: Path) -> None:
    bus = LocalBus()
    cache = _cache(store, tmp_path, bus, Clock(), ttl=3600)  # only a revocation can make it read again
    a, key_a = await _tenant_key(store, "a")
    b, key_b = await _tenant_key(store, "b")
    assert await cache.principal(key_a.secret) is not None
    assert await cache.principal(key_b.secret) is not None
    # Narrowed to one session's reading, as PUT /api/keys/{id} does (and then tells the bus).
    narrow = KeyScope.of("s1", [Action.READ])
    await store.api_keys.update(key_a.key.id, tenant_id=a, role=Role.SCOPED, scope=narrow, active=True)
    bus.revoke(keys=[key_a.key.id])
    narrowed = await cache.principal(key_a.secret)
    assert narrowed is not None
    assert (narrowed.role, narrowed.scope) == (Role.SCOPED, narrow)
    await store.api_keys.revoke(key_a.key.id, tenant_id=a)
    bus.revoke(keys=[key_a.key.id])
    assert await cache.principal(key_a.secret) is None
    # Another tenant's key is not touched by that; its tenant's deletion is.
    assert await cache.principal(key_b.secret) is not None
    assert await store.tenants.delete(b)
    bus.revoke(tenants=[b])
    assert await cache.principal(key_b.secret) is None


async def test_a_lookup_under_way_across_a_revocation_is_not_remembered(store: Store, tmp_path: Path) -> None:
    bus = LocalBus()
    cache = _cache(store, tmp_path, bus, Clock(), ttl=3600)
    tenant, issued = await _tenant_key(store, "a")
    lookup = asyncio.create_task(cache.principal(issued.secret))
    await asyncio.sleep(0)  # the lookup waits for the store now
    bus.revoke(keys=[issued.key.id])
    assert await lookup is not None  # read as the key was: answered, but not kept
    await store.api_keys.update(issued.key.id, tenant_id=tenant, role=Role.TENANT, scope=KeyScope(), active=False)
    assert await cache.principal(issued.secret) is None  # read again, not taken from the cache


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


async def test_another_process_s_revocation_is_forgotten_as_its_notice_arrives(
    pg_store: Store, other: Store, tmp_path: Path
) -> None:
    bus = LocalBus()
    cache = _cache(pg_store, tmp_path, bus, time.monotonic, ttl=3600)  # no expiry within the test
    peers = PeerEvents(pg_store, bus, "w#holder", recheck_interval=3600)
    peers.start()
    try:
        deadline = time.monotonic() + 10
        while not peers.listening:
            assert time.monotonic() < deadline, "the peer channel does not listen"
            await asyncio.sleep(0.02)
        tenant, issued = await _tenant_key(pg_store, "a")
        assert await cache.principal(issued.secret) is not None
        # Switched off through the other process, which tells nobody itself: the store's notice does.
        off = await other.api_keys.update(
            issued.key.id, tenant_id=tenant, role=Role.TENANT, scope=KeyScope(), active=False
        )
        assert off is not None
        while await cache.principal(issued.secret) is not None:
            assert time.monotonic() < deadline, "the switched-off key is still trusted"
            await asyncio.sleep(0.02)
    finally:
        await peers.stop()

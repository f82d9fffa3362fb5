"""Group commit of credential writes on PostgreSQL: several sessions' writes share a transaction, each stays fenced
by its lease, and none is acknowledged before the transaction that holds it has committed.

A connection of the test's own holds a session's lease row locked (as a worker taking the session over would),
which holds the gateway's transaction at its fence: what is acknowledged meanwhile, and what a takeover or a lost
connection does to the batch, can then be seen. Which transaction wrote a row is the row's ``xmin``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.support.services import PG_DSN, pg_url
from wagate.crypto.keyring import Keyring
from wagate.domain.sessions import Desired, NewSession, Quotas
from wagate.errors import LeaseLost, StoreUnavailable
from wagate.store import open_store
from wagate.store.base import Store
from wagate.store.vault import Vault, Vaults

pytestmark = pytest.mark.services

KEYRING = Keyring({"k1": bytes(32)}, "k1")


@pytest.fixture
async def pg_store(pg_schema: str) -> AsyncIterator[Store]:
    opened = await open_store(pg_url(), schema=pg_schema)
    yield opened
    await opened.close()


@pytest.fixture
async def outside(pg_schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that is not the gateway's, in the same schema."""
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_schema})
    yield conn
    await conn.close()


async def _vaults(store: Store, count: int) -> list[Vault]:
    """``count`` sessions holding their leases, their data keys made (so that a write is the only transaction)."""
    tenant = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vaults = Vaults(store.auth, KEYRING)  # as the gateway makes them
    opened = []
    for n in range(count):
        s = await store.sessions.create(
            NewSession(tenant.id, f"s{n}", "sim", {}, Desired.RUNNING), quotas=Quotas(100, 1000), actor="test"
        )
        lease = await store.leases.acquire(s.id, "w1", ttl=60)
        assert lease is not None
        await vaults.data_key(tenant.id, s.id, create=True)
        opened.append(vaults.open(tenant.id, s.id, owner="w1", epoch=lease.epoch))
    return opened


async def _write(vault: Vault, value: bytes) -> None:
    await vault.put_many({("session", "15550100.0"): value})


async def _stored(outside: asyncpg.Connection) -> dict[str, Any]:
    """The transaction (``xmin``) that wrote each session's record, by session."""
    rows = await outside.fetch("SELECT session_id, xmin::text AS tx FROM auth_records")
    return {row["session_id"]: row["tx"] for row in rows}


async def _until_blocked(outside: asyncpg.Connection, what: str) -> None:
    for _ in range(250):
        if await _blocked_by(outside):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def _blocked_by(outside: asyncpg.Connection) -> list[int]:
    """The backends waiting for a lock the outside connection holds."""
    mine = await outside.fetchval("SELECT pg_backend_pid()")
    rows = await outside.fetch("SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", mine)
    return [row["pid"] for row in rows]


async def _lock_lease(outside: asyncpg.Connection, vault: Vault) -> asyncpg.transaction.Transaction:
    tx = outside.transaction()
    await tx.start()
    await outside.execute("SELECT 1 FROM session_leases WHERE session_id = $1 FOR UPDATE", vault.session_id)
    return tx


async def test_several_sessions_writes_share_one_transaction(pg_store: Store, outside: asyncpg.Connection) -> None:
    vaults = await _vaults(pg_store, 10)
    tx = await _lock_lease(outside, vaults[0])
    first = asyncio.create_task(_write(vaults[0], b"first"))
    await _until_blocked(outside, "the first write to wait at its fence")
    # The other nine write while the first one's transaction waits: they go together in the next.
    rest = [asyncio.create_task(_write(v, bytes([n]))) for n, v in enumerate(vaults[1:])]
    await asyncio.sleep(0.1)
    assert not any(t.done() for t in [first, *rest])
    await tx.rollback()
    await asyncio.gather(first, *rest)
    written = await _stored(outside)
    assert set(written) == {v.session_id for v in vaults}
    assert len({written[v.session_id] for v in vaults[1:]}) == 1  # one transaction for the nine
    assert written[vaults[0].session_id] != written[vaults[1].session_id]
    for n, vault in enumerate(vaults[1:]):
        assert await vault.get_many("session", ["15550100.0"]) == {"15550100.0": bytes([n])}


async def test_a_takeover_refuses_only_its_sessions_write(pg_store: Store, outside: asyncpg.Connection) -> None:
    vaults = await _vaults(pg_store, 6)
    taken = vaults[3]
    tx = await _lock_lease(outside, taken)
    writes = [asyncio.create_task(_write(v, b"v%d" % n)) for n, v in enumerate(vaults)]
    await _until_blocked(outside, "the batch to wait at the taken session's fence")
    # Another worker takes session 3 over while the batch waits for its lease row.
    await outside.execute(
        "UPDATE session_leases SET owner = 'w2', epoch = epoch + 1 WHERE session_id = $1", taken.session_id
    )
    await tx.commit()
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(r) for r in results] == [type(None)] * 3 + [LeaseLost] + [type(None)] * 2
    written = await _stored(outside)
    assert taken.session_id not in written
    assert len(written) == 5
    assert len(set(written.values())) == 1  # the others, committed together
    for n, vault in enumerate(vaults):
        if vault is not taken:
            assert await vault.get_many("session", ["15550100.0"]) == {"15550100.0": b"v%d" % n}


async def test_nothing_is_acknowledged_before_its_commit(pg_store: Store, outside: asyncpg.Connection) -> None:
    vaults = await _vaults(pg_store, 5)
    tx = await _lock_lease(outside, vaults[2])
    writes = [asyncio.create_task(_write(v, b"lost")) for v in vaults]
    await _until_blocked(outside, "the batch to wait at a fence")
    await asyncio.sleep(0.1)
    assert not any(w.done() for w in writes)  # its transaction is open: no write is acknowledged
    (pid,) = await _blocked_by(outside)
    # The connection dies with the transaction open (the database restarted, the network cut).
    assert await outside.fetchval("SELECT pg_terminate_backend($1)", pid)
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    await tx.rollback()
    assert await _stored(outside) == {}  # nothing of it was committed, and nothing was acknowledged
    # The writers retry, as after any failed write: the combiner goes on, on a new connection.
    await asyncio.gather(*(_write(v, b"again") for v in vaults))
    assert set(await _stored(outside)) == {v.session_id for v in vaults}


async def test_a_cancelled_writer_leaves_its_batch_to_commit(pg_store: Store, outside: asyncpg.Connection) -> None:
    vaults = await _vaults(pg_store, 4)
    tx = await _lock_lease(outside, vaults[3])
    writes = [asyncio.create_task(_write(v, b"v%d" % n)) for n, v in enumerate(vaults)]
    await _until_blocked(outside, "the batch to wait at a fence")
    writes[0].cancel()  # the first writer's runner stops while the batch it started commits
    await asyncio.sleep(0.1)
    await tx.rollback()
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [None] * 3  # the other sessions' writes committed, and were told so
    assert len(set((await _stored(outside)).values())) == 1

"""Workers that start together claim from the same free sessions at once, each in its own (shuffled) order and
past one statement's worth of rows: the claims never deadlock, and each session goes to exactly one of them. Nor do
they deadlock with the renewals of the workers that hold leases: a claim does not lock another's live lease."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import insert

from wagate.domain.sessions import Desired, Status
from wagate.ids import SessionId
from wagate.store import open_store
from wagate.store.base import Store
from wagate.store.sql import SqlStore, schema

SESSIONS = 1200  # more than two statements' worth of locked rows (500 each)


async def sessions(store: Store, count: int) -> list[SessionId]:
    """``count`` sessions to run, free, as creating them leaves them, written at once (creating 1,200 sessions one
    by one takes seconds)."""
    assert isinstance(store, SqlStore)
    tenant = await store.tenants.create("t", contact_email=None, max_sessions=None)
    ids = [SessionId(f"ses_{n:05d}") for n in range(count)]
    async with store.db.write() as conn:
        await conn.execute(
            insert(schema.sessions),
            [
                {
                    "id": session_id,
                    "tenant_id": tenant.id,
                    "name": session_id,
                    "engine": "sim",
                    "config": "{}",
                    "desired": Desired.RUNNING.value,
                    "status": Status.STARTING.value,
                    "generation": 0,
                    "created_at": 0.0,
                    "updated_at": 0.0,
                }
                for session_id in ids
            ],
        )
        await conn.execute(
            insert(schema.session_leases),
            [{"session_id": i, "owner": None, "epoch": 0, "expires_at": 0.0, "acquired_at": 0.0} for i in ids],
        )
    return ids


async def test_claims_in_opposite_orders_at_once_split_the_sessions(
    store: Store, backend: tuple[str, str | None]
) -> None:
    url, schema_name = backend
    if schema_name is None:
        pytest.skip("SQLite has one writer: two claims never hold locks at once")
    ids = await sessions(store, SESSIONS)
    other = await open_store(url, schema=schema_name)  # another worker: its own connections
    try:
        for attempt in range(3):
            first, second = await asyncio.gather(
                store.leases.acquire_many(ids, f"a{attempt}", ttl=30, limit=SESSIONS // 2, wanted=Desired.RUNNING),
                other.leases.acquire_many(
                    ids[::-1], f"b{attempt}", ttl=30, limit=SESSIONS // 2, wanted=Desired.RUNNING
                ),
            )
            assert len(first) == len(second) == SESSIONS // 2
            assert first.keys() | second.keys() == set(ids)  # every session to exactly one of them
            await store.leases.release_all(f"a{attempt}")
            await store.leases.release_all(f"b{attempt}")
    finally:
        await other.close()


async def test_claims_leave_the_live_leases_of_others_to_their_renewals(
    store: Store, backend: tuple[str, str | None]
) -> None:
    """Two workers hold every session and renew them all at once, while two more look for free ones (the others'
    live leases are not theirs to take): nobody waits for a lock the others hold in another order."""
    url, schema_name = backend
    if schema_name is None:
        pytest.skip("SQLite has one writer: two claims never hold locks at once")
    ids = await sessions(store, 400)
    other = await open_store(url, schema=schema_name)
    try:
        order = random.Random(3)
        # Taken one by one, the last first: the rows' new versions lie in the table against the ids' order, and a
        # renewal, which updates a worker's rows as they lie, locks them in that order.
        for n in reversed(range(len(ids))):
            await (store, other)[n % 2].leases.acquire_many([ids[n]], "ab"[n % 2], ttl=30)
        for _ in range(5):
            shuffled = order.sample(ids, len(ids))
            renewed_a, renewed_b, claimed_c, claimed_d = await asyncio.gather(
                store.leases.renew_all("a", ttl=30),
                other.leases.renew_all("b", ttl=30),
                store.leases.acquire_many(shuffled, "c", ttl=30, wanted=Desired.RUNNING),
                other.leases.acquire_many(shuffled[::-1], "d", ttl=30, wanted=Desired.RUNNING),
            )
            assert (renewed_a, renewed_b) == (set(ids[::2]), set(ids[1::2]))
            assert claimed_c == claimed_d == {}
    finally:
        await other.close()

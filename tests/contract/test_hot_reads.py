"""The hot read path (``Database.run_read``) on PostgreSQL: its connections are not pinged before each use, so one
that the server closed meanwhile (a restart, an idle connection cut) must be replaced and the read run again, not
answered as a 503 on every request until the pool turns over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text

from tests.support.services import pg_url
from wagate.crypto.tokens import hash_api_key
from wagate.domain.tenants import Role
from wagate.services.accounts import issue_key
from wagate.store import open_store
from wagate.store.sql import SqlStore
from wagate.store.sql.prepared import Prepared, Tx

pytestmark = pytest.mark.timeout(60)

_BACKEND = Prepared(lambda _: select(func.pg_backend_pid()), [])


@pytest.fixture
async def pg_store(pg_schema: str) -> AsyncIterator[SqlStore]:
    opened = await open_store(pg_url(), schema=pg_schema)
    assert isinstance(opened, SqlStore)
    yield opened
    await opened.close()


async def test_a_hot_read_whose_connection_was_cut_is_read_again_on_a_new_one(pg_store: SqlStore) -> None:
    tenant = await pg_store.tenants.create("a", contact_email=None, max_sessions=None)
    issued = await issue_key(pg_store, tenant_id=tenant.id, role=Role.TENANT, name="k")
    digest = hash_api_key(issued.secret)
    assert await pg_store.api_keys.find_active(digest) is not None
    # One read at a time so far: the hot reader's pool holds one connection, the one this read gets again.
    (first,) = await pg_store.db.run_read(lambda conn: Tx(conn).fetch(_BACKEND))
    async with pg_store.db.write() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first[0]})
    deadline = time.monotonic() + 10
    while True:
        async with pg_store.db.read() as conn:
            query = text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid")
            if (await conn.execute(query, {"pid": first[0]})).first() is None:
                break
        assert time.monotonic() < deadline, "the backend did not end"
        await asyncio.sleep(0.05)

    found = await pg_store.api_keys.find_active(digest)
    assert found is not None
    assert found.id == issued.key.id
    (now,) = await pg_store.db.run_read(lambda conn: Tx(conn).fetch(_BACKEND))
    assert now[0] != first[0]  # a new connection, the cut one dropped

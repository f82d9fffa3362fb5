"""Revocation is immediate, against real gateway processes: revoking a key closes its open WebSocket streams within a
second (4401) and its unused tickets stop working; deleting a tenant closes the streams of all its keys. On SQLite
one process does both; on PostgreSQL the streams are on one worker and the revocation goes through the other, and a
notice the other missed (its listening connection was cut) is made up for when it listens again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, serve
from tests.support.services import PG_DSN, pg_url
from wagate.store.sql.announcements import channel

pytestmark = pytest.mark.e2e

ADMIN = "revocation-admin-key-0123456789abcdef"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    """(the worker that revokes, the worker that holds the streams): one process on SQLite, two on PostgreSQL."""
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "a"), WAGATE_ADMIN_KEY=ADMIN, WAGATE_KEYS=TEST_KEK)
    if request.param == "postgresql":
        schema: str = request.getfixturevalue("pg_schema")
        env |= {"WAGATE_DATABASE_URL": pg_url(), "WAGATE_DATABASE_SCHEMA": schema, "WAGATE_WORKER_ID": "a"}
    started = [serve(tmp_path, env, name="a")]
    if request.param == "postgresql":
        started[0].wait_healthy()  # the first migrates the schema
        started.append(serve(tmp_path, env | {"WAGATE_WORKER_ID": "b", "WAGATE_DATA_DIR": str(tmp_path / "b")}))
    try:
        for worker in started:
            worker.wait_healthy()
        yield started[0], started[-1]
    finally:
        for worker in started:
            worker.kill()


def _ws(worker: Served, *, key: str | None = None, ticket: str | None = None) -> ClientConnection:
    url = worker.base_url.replace("http://", "ws://") + "/ws" + (f"?ticket={ticket}" if ticket else "")
    return connect(url, additional_headers={"X-Api-Key": key} if key else {}, open_timeout=10)


def _ticket(worker: Served, key: str) -> str:
    made = loopback.post(worker.base_url + "/api/events/ticket", headers={"X-Api-Key": key}, timeout=10)
    assert made.status_code == 200, made.text
    ticket: str = made.json()["ticket"]
    return ticket


def _closed(ws: ClientConnection, timeout: float) -> tuple[int | None, str]:
    """Wait for the server to close (no events flow here); its code and reason."""
    try:
        ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
    raise AssertionError("the server sent an event instead of closing")


def _open(ws: ClientConnection) -> bool:
    try:
        ws.recv(timeout=0.3)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    raise AssertionError("the server sent an event")


def test_revoking_a_key_or_deleting_its_tenant_ends_its_streams_at_once(workers: tuple[Served, Served]) -> None:
    revoker, holder = workers
    admin = loopback.client(base_url=revoker.base_url, headers={"X-Api-Key": ADMIN}, timeout=10)
    made = admin.post("/api/tenants", json={"name": "t"})
    assert made.status_code == 201, made.text
    tenant, first = made.json()["id"], made.json()["api_key"]
    second = admin.post("/api/keys", json={"tenant_id": tenant, "name": "second", "isAdmin": True})
    assert second.status_code == 201, second.text
    other = admin.post("/api/keys", json={"tenant_id": tenant, "name": "other", "isAdmin": True}).json()["key"]
    unused = _ticket(holder, second.json()["key"])

    with (
        _ws(holder, key=second.json()["key"]) as by_key,
        _ws(holder, ticket=_ticket(holder, second.json()["key"])) as by_ticket,
        _ws(holder, key=first) as kept,
        _ws(holder, ticket=_ticket(holder, other)) as kept_too,
    ):
        assert all(_open(ws) for ws in (by_key, by_ticket, kept, kept_too))
        started = time.monotonic()
        assert admin.delete(f"/api/keys/{second.json()['id']}").status_code == 200
        for ws in (by_key, by_ticket):
            assert _closed(ws, timeout=5) == (4401, "the API key was revoked")
        assert time.monotonic() - started < 1.0
        assert _open(kept)  # the tenant's other keys go on
        assert _open(kept_too)

        with _ws(holder, ticket=unused) as late:  # issued before the revocation, used after
            assert _closed(late, timeout=5)[0] == 4401

        started = time.monotonic()
        assert admin.delete(f"/api/tenants/{tenant}").status_code == 204
        for ws in (kept, kept_too):
            assert _closed(ws, timeout=5) == (4401, "the tenant was deleted")
        assert time.monotonic() - started < 1.0
    admin.close()


def _pg(sql: str, *args: object) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(PG_DSN)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _listeners(schema: str) -> list[int]:
    """The backends listening on this installation's channel (one per worker)."""
    rows = _pg("SELECT pid FROM pg_stat_activity WHERE query = $1", f'LISTEN "{channel(schema)}"')
    return [row["pid"] for row in rows]


def test_a_revocation_made_while_a_worker_was_not_listening_still_ends_its_streams(
    pg_schema: str, tmp_path: Path
) -> None:
    """Both workers' listening connections are cut; the key is revoked through one worker before they listen again,
    so its notice reaches no one. The other worker checks its streams' keys when it listens again, and closes it."""
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "a"), WAGATE_ADMIN_KEY=ADMIN, WAGATE_KEYS=TEST_KEK)
    env |= {"WAGATE_DATABASE_URL": pg_url(), "WAGATE_DATABASE_SCHEMA": pg_schema, "WAGATE_WORKER_ID": "a"}
    revoker = serve(tmp_path, env, name="a")
    holder = None
    try:
        revoker.wait_healthy()
        holder = serve(tmp_path, env | {"WAGATE_WORKER_ID": "b", "WAGATE_DATA_DIR": str(tmp_path / "b")}, name="b")
        holder.wait_healthy()
        admin = loopback.client(base_url=revoker.base_url, headers={"X-Api-Key": ADMIN}, timeout=10)
        made = admin.post("/api/tenants", json={"name": "t"})
        assert made.status_code == 201, made.text
        tenant, kept = made.json()["id"], made.json()["api_key"]
        second = admin.post("/api/keys", json={"tenant_id": tenant, "name": "second", "isAdmin": True}).json()
        deadline = time.monotonic() + 20
        while len(listening := _listeners(pg_schema)) < 2:
            assert time.monotonic() < deadline, listening
            time.sleep(0.1)

        with _ws(holder, key=second["key"]) as revoked_stream, _ws(holder, key=kept) as kept_stream:
            assert _open(revoked_stream)
            assert _open(kept_stream)
            for pid in listening:
                _pg("SELECT pg_terminate_backend($1)", pid)
            while _pg("SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])", listening):
                assert time.monotonic() < deadline, "the listening backends did not end"
                time.sleep(0.02)
            assert admin.delete(f"/api/keys/{second['id']}").status_code == 200
            assert _listeners(pg_schema) == []  # the notice was sent to no one
            assert _closed(revoked_stream, timeout=15) == (4401, "the API key was revoked")
            assert _open(kept_stream)
        admin.close()
    finally:
        revoker.kill()
        if holder is not None:
            holder.kill()

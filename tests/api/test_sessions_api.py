"""The session API over a real store (SQLite and PostgreSQL) through the real ASGI app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient

from tests.support.api import ADMIN, assert_error, make_tenant
from wagate.domain.sessions import Status, StatusChange
from wagate.gateway import Gateway


async def test_create_get_list_shape(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    created = await client.post(
        "/api/sessions", json={"name": "main", "config": {"metadata": {"team": "x"}}}, headers=a
    )
    assert created.status_code == 201
    body = created.json()
    # WAHA's SessionInfo, then wagate's additions.
    assert body == {
        "name": "main",
        "status": "STOPPED",
        "config": {"metadata": {"team": "x"}, "debug": False, "idle_stop": False},
        "me": None,
        "assignedWorker": None,
        "presence": {},
        "timestamps": {"activity": None},
        "apps": None,
        "engine": "neonize",  # the real engine unless the gateway runs with --demo
        "desired": "running",
        "reason": None,
        "note": None,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "connected_at": None,
    }
    assert (await client.get("/api/sessions/main", headers=a)).json() == body
    assert (await client.get("/api/sessions/main", params={"expand": "apps"}, headers=a)).json() == body
    await client.post("/api/sessions", json={"name": "idle", "start": False}, headers=a)
    # As WAHA: without ?all=true, sessions that are stopped and meant to stay stopped are left out.
    assert [s["name"] for s in (await client.get("/api/sessions", headers=a)).json()] == ["main"]
    listed = (await client.get("/api/sessions", params={"all": "true", "expand": "apps"}, headers=a)).json()
    assert [s["name"] for s in listed] == ["idle", "main"]
    assert listed[1] == body


async def test_missing_or_wrong_key_is_401_everywhere(client: AsyncClient) -> None:
    routes = [
        ("GET", "/api/sessions"),
        ("POST", "/api/sessions"),
        ("GET", "/api/sessions/x"),
        ("PUT", "/api/sessions/x"),
        ("DELETE", "/api/sessions/x"),
        ("POST", "/api/sessions/x/start"),
        ("POST", "/api/sessions/x/stop"),
        ("GET", "/api/sessions/x/history"),
        ("GET", "/api/tenants"),
        ("POST", "/api/tenants"),
        ("GET", "/api/keys"),
    ]
    for method, path in routes:
        assert_error(await client.request(method, path), 401, "missing_api_key")
        assert_error(await client.request(method, path, headers={"X-Api-Key": "wag_wrong"}), 401, "invalid_api_key")


async def test_roles_are_enforced(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    assert_error(await client.get("/api/tenants", headers=a), 403, "admin_key_required")
    assert_error(await client.post("/api/tenants", json={"name": "evil"}, headers=a), 403)
    assert_error(await client.get("/api/sessions", headers=ADMIN), 403, "tenant_key_required")


async def test_other_tenant_learns_nothing(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    b = await make_tenant(client, "b")
    assert (await client.post("/api/sessions", json={"name": "secret"}, headers=a)).status_code == 201
    before = (await client.get("/api/sessions/secret", headers=a)).json()
    attempts = [
        ("GET", "/api/sessions/secret", None),
        ("PUT", "/api/sessions/secret", {"config": {"metadata": {"owned": "by b"}}}),
        ("POST", "/api/sessions/secret/start", None),
        ("POST", "/api/sessions/secret/stop", None),
        ("GET", "/api/sessions/secret/history", None),
        ("GET", "/api/sessions/secret/me", None),
    ]
    for method, path, body in attempts:
        theirs = await client.request(method, path, json=body, headers=b)
        missing = await client.request(method, path.replace("secret", "nosuch"), json=body, headers=b)
        assert_error(theirs, 404, "session_not_found")
        # Exactly the answer for a session that does not exist, apart from the name echoed back.
        assert theirs.json()["error"]["message"].replace("secret", "nosuch") == missing.json()["error"]["message"]
    # Deleting is idempotent (as WAHA's): b's delete of a's session is the delete of one that is not there.
    for path in ("/api/sessions/secret", "/api/sessions/nosuch"):
        deleted = await client.delete(path, headers=b)
        assert (deleted.status_code, deleted.content) == (200, b"")
    legacy: list[tuple[str, dict[str, Any]]] = [
        ("logout", {"name": "secret"}),
        ("stop", {"name": "secret", "logout": True}),
    ]
    for verb, given in legacy:
        assert (await client.post(f"/api/sessions/{verb}", json=given, headers=b)).status_code == 201
    assert (await client.get("/api/sessions", params={"all": "true"}, headers=b)).json() == []
    assert (await client.get("/api/sessions/secret", headers=a)).json() == before
    # b may use the same name for its own session.
    assert (await client.post("/api/sessions", json={"name": "secret"}, headers=b)).status_code == 201


async def test_start_stop_put_delete_and_history(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    await client.post("/api/sessions", json={"name": "s", "start": False}, headers=a)
    started = await client.post("/api/sessions/s/start", headers=a)
    assert (started.status_code, started.json()["desired"]) == (201, "running")
    stopped = await client.post("/api/sessions/s/stop", headers=a)
    assert (stopped.status_code, stopped.json()["desired"]) == (201, "stopped")
    put = await client.put("/api/sessions/s", json={"config": {"metadata": {"v": "2"}}}, headers=a)
    assert put.status_code == 200
    assert put.json()["config"] == {"metadata": {"v": "2"}, "debug": False, "idle_stop": False}
    history = (await client.get("/api/sessions/s/history", headers=a)).json()
    assert [(e["kind"], e["desired"], e["actor"]) for e in reversed(history)] == [
        ("created", "stopped", "api"),
        ("desired", "running", "api"),
        ("desired", "stopped", "api"),
        ("config", "stopped", "api"),
    ]
    page = (
        await client.get("/api/sessions/s/history", params={"limit": 2, "before": history[1]["id"]}, headers=a)
    ).json()
    assert [e["id"] for e in page] == [history[2]["id"], history[3]["id"]]
    assert (await client.delete("/api/sessions/s", headers=a)).status_code == 200
    assert_error(await client.get("/api/sessions/s", headers=a), 404)
    assert (await client.delete("/api/sessions/s", headers=a)).status_code == 200  # idempotent, as WAHA's
    assert_error(await client.get("/api/sessions/s/history", headers=a), 404)


async def test_quotas_answer_429(client: AsyncClient) -> None:
    small = await make_tenant(client, "small", max_sessions=2)
    for name in ("one", "two"):
        assert (await client.post("/api/sessions", json={"name": name}, headers=small)).status_code == 201
    over = await client.post("/api/sessions", json={"name": "three"}, headers=small)
    assert_error(over, 429, "tenant_quota_exceeded")
    assert "quota of 2 sessions" in over.json()["error"]["message"]
    assert len((await client.get("/api/sessions", params={"all": 1}, headers=small)).json()) == 2
    # Deleting one frees a place.
    await client.delete("/api/sessions/one", headers=small)
    assert (await client.post("/api/sessions", json={"name": "three"}, headers=small)).status_code == 201


async def test_default_tenant_quota_is_five(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    for i in range(5):
        assert (await client.post("/api/sessions", json={"name": f"s{i}"}, headers=a)).status_code == 201
    assert_error(await client.post("/api/sessions", json={"name": "s5"}, headers=a), 429)


@pytest.mark.parametrize(
    "name", ["", "has space", "a" * 65, "ümlaut", "../etc", "semi;colon", "dot.name", "new\nline", 7, ["x"]]
)
async def test_bad_names_are_422(client: AsyncClient, name: object) -> None:
    a = await make_tenant(client, "a")
    assert_error(await client.post("/api/sessions", json={"name": name}, headers=a), 422, "invalid_request")
    assert (await client.get("/api/sessions", params={"all": 1}, headers=a)).json() == []


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        (None, b"{not json"),
        (None, b""),
        ({"name": "ok", "unknown": 1}, None),
        ({"name": "ok", "start": "maybe"}, None),
        ({"name": "ok", "config": "x"}, None),
        ({"name": "ok", "config": {"metadata": {"k": 1}}}, None),
        ({"name": "ok", "config": {"proxy": "http://x"}}, None),
        ({"name": "ok", "engine": "nope"}, None),
        ([1, 2], None),
    ],
)
async def test_bad_bodies_are_422(client: AsyncClient, body: object, raw: bytes | None) -> None:
    a = await make_tenant(client, "a")
    if raw is not None:
        response = await client.post("/api/sessions", content=raw, headers={**a, "Content-Type": "application/json"})
    else:
        response = await client.post("/api/sessions", json=body, headers=a)
    assert_error(response, 422)
    assert (await client.get("/api/sessions", params={"all": 1}, headers=a)).json() == []


async def test_duplicate_name_is_422_and_keeps_the_first(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    first = await client.post("/api/sessions", json={"name": "dup", "config": {"metadata": {"n": "1"}}}, headers=a)
    assert_error(await client.post("/api/sessions", json={"name": "dup"}, headers=a), 422, "session_exists")
    assert (await client.get("/api/sessions/dup", headers=a)).json() == first.json()


async def test_bad_put_and_query_values_are_4xx(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    await client.post("/api/sessions", json={"name": "s"}, headers=a)
    assert_error(await client.put("/api/sessions/s", json={"config": {"nope": 1}}, headers=a), 422)
    assert_error(await client.put("/api/sessions/s", json={"start": True, "stop": True}, headers=a), 422)
    assert_error(await client.put("/api/sessions/s", json={"config": {"debug": "loud"}}, headers=a), 422)
    assert_error(await client.get("/api/sessions/s/history", params={"limit": 0}, headers=a), 422)
    assert_error(await client.get("/api/sessions/s/history", params={"limit": "x"}, headers=a), 422)
    assert_error(await client.get("/api/sessions/" + "x" * 300, headers=a), 422)
    assert_error(await client.patch("/api/sessions/s", json={}, headers=a), 405)
    assert_error(await client.get("/api/nothing-here", headers=a), 404)


async def test_a_session_whose_worker_no_longer_holds_its_lease_is_not_shown_working(
    client: AsyncClient, gateway: Gateway
) -> None:
    """The row says WORKING as its worker last wrote it; once that worker's lease lapses (it died), or another
    worker took the lease and has not said anything yet, the API says STARTING (lease_lost), not WORKING."""
    key = await make_tenant(client, "t")
    created = await client.post("/api/sessions", json={"name": "main", "engine": "sim"}, headers=key)
    assert created.status_code == 201, created.text
    store = gateway.store
    (tenant,) = await store.tenants.list_all()
    (session,) = await store.sessions.list_sessions(tenant.id)

    async def seen() -> tuple[str, str | None]:
        listed = (await client.get("/api/sessions", headers=key)).json()
        one = (await client.get("/api/sessions/main", headers=key)).json()
        assert [one] == listed
        return one["status"], one["reason"]

    first = await store.leases.acquire(session.id, "dead#1", ttl=1.5)
    assert first is not None
    await store.sessions.set_status_many([StatusChange(session.tenant_id, session.id, "dead#1", 1, Status.WORKING)])
    assert await seen() == ("WORKING", None)
    await asyncio.sleep(1.6)  # no renewal: the lease lapses
    assert await seen() == ("STARTING", "lease_lost")
    one = (await client.get("/api/sessions/main", headers=key)).json()
    assert "stopped renewing its lease" in one["note"]
    second = await store.leases.acquire(session.id, "alive#1", ttl=30)
    assert second is not None
    assert await seen() == ("STARTING", "lease_lost")  # its new owner has not said how it is yet
    await store.sessions.set_status_many(
        [StatusChange(session.tenant_id, session.id, "alive#1", second.epoch, Status.WORKING)]
    )
    assert await seen() == ("WORKING", None)

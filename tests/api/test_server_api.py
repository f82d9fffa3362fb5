"""The server's routes over a real store (SQLite and PostgreSQL) and a real Redis, through the real app: the status
(a tenant's own sessions; the admin's whole process), WAHA's ping, version and environment."""

from __future__ import annotations

import asyncio
import platform
import time

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from tests.support.api import ADMIN, assert_error, make_tenant
from tests.support.procs import free_port
from tests.support.services import REDIS_URL, require_redis
from wagate import __version__
from wagate.api.app import create_app
from wagate.domain.sessions import Status, StatusChange
from wagate.domain.waha import waha_engine
from wagate.gateway import Gateway
from wagate.runtime.node import Node


async def status_with(gateway: Gateway, redis_url: str | None) -> dict[str, object]:
    settings = gateway.settings.with_overrides(redis_url=SecretStr(redis_url) if redis_url else None)
    app = create_app(Node(Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock)))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://wagate.test") as http:
        a = await make_tenant(http, "a")
        for name in ("one", "two"):
            assert (await http.post("/api/sessions", json={"name": name}, headers=a)).status_code == 201
        await http.post("/api/sessions", json={"name": "idle", "start": False}, headers=a)
        assert_error(await http.get("/api/server/status"), 401)
        response = await http.get("/api/server/status", headers=ADMIN)
        assert response.status_code == 200
        body: dict[str, object] = response.json()
        return body


@pytest.mark.services
async def test_status_reports_store_redis_sessions_and_the_process(gateway: Gateway) -> None:
    require_redis()
    body = await status_with(gateway, REDIS_URL)
    store = body["store"]
    assert isinstance(store, dict)
    assert store["reachable"] is True
    assert store["backend"] == gateway.store.backend
    redis = body["redis"]
    assert isinstance(redis, dict)
    assert (redis["configured"], redis["reachable"]) == (True, True)
    assert redis["latency_ms"] >= 0
    assert body["sessions"] == {
        "total": 3,
        "by_status": {"STOPPED": 3},
        "should_run": 2,
        "healthy_percent": 0.0,  # nothing runs them in this app: none of the two is WORKING
    }
    assert isinstance(body["memory_rss_bytes"], int)
    assert body["memory_rss_bytes"] > 10 * 1024 * 1024
    assert isinstance(body["requests"], int)
    assert body["requests"] >= 5
    assert body["error_rate"] == 0.0
    assert isinstance(body["uptime"], int)
    assert isinstance(body["startTimestamp"], int)
    assert {"version", "cpu_percent", "avg_response_ms", "worker", "engine_hosts", "workers"} <= set(body)


async def test_status_says_when_redis_is_unreachable(gateway: Gateway) -> None:
    body = await status_with(gateway, f"redis://127.0.0.1:{free_port()}/0")
    assert body["redis"] == {"configured": True, "reachable": False, "error": "ConnectionError"}
    assert "127.0.0.1" not in str(body)  # the URL (which may hold a password) is not echoed


async def test_status_counts_sessions_as_they_are_not_as_stale_rows_say(client: AsyncClient, gateway: Gateway) -> None:
    """A row that says WORKING for a worker whose lease lapsed counts as STARTING, as the sessions routes show it."""
    key = await make_tenant(client, "a")
    for name in ("gone", "alive"):
        assert (await client.post("/api/sessions", json={"name": name}, headers=key)).status_code == 201
    store = gateway.store
    (tenant,) = await store.tenants.list_all()
    by_name = {s.name: s for s in await store.sessions.list_sessions(tenant.id)}
    for name, owner, ttl in (("gone", "dead#1", 2.0), ("alive", "alive#1", 60.0)):
        lease = await store.leases.acquire(by_name[name].id, owner, ttl=ttl)
        assert lease is not None
        change = StatusChange(tenant.id, by_name[name].id, owner, lease.epoch, Status.WORKING)
        assert await store.sessions.set_status_many([change]) != [None]

    async def sessions() -> object:
        response = await client.get("/api/server/status", headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()["sessions"]

    assert await sessions() == {
        "total": 2,
        "by_status": {"WORKING": 2},
        "should_run": 2,
        "healthy_percent": 100.0,
    }
    await asyncio.sleep(2.1)  # no renewal: the first lease lapses, its row still says WORKING
    assert await store.sessions.count_by_status_all_tenants() == {("WORKING", "running"): 2}
    assert await sessions() == {
        "total": 2,
        "by_status": {"WORKING": 1, "STARTING": 1},
        "should_run": 2,
        "healthy_percent": 50.0,
    }
    listed = (await client.get("/api/sessions", headers=key)).json()
    assert sorted((s["name"], s["status"]) for s in listed) == [("alive", "WORKING"), ("gone", "STARTING")]


async def test_a_tenant_reads_the_status_of_its_own_sessions_only(client: AsyncClient) -> None:
    a, b = await make_tenant(client, "a"), await make_tenant(client, "b")
    for name in ("one", "two"):
        assert (await client.post("/api/sessions", json={"name": name, "start": False}, headers=a)).status_code == 201
    assert (await client.post("/api/sessions", json={"name": "three"}, headers=b)).status_code == 201
    response = await client.get("/api/server/status", headers=a)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"startTimestamp", "uptime", "worker", "version", "sessions"}  # nothing of the process
    assert body["sessions"] == {"total": 2, "by_status": {"STOPPED": 2}, "should_run": 0, "healthy_percent": 100.0}
    assert 0 <= body["uptime"] < 600_000
    assert abs(body["startTimestamp"] + body["uptime"] - time.time() * 1000) < 5_000
    assert body["worker"]["id"]
    admin = (await client.get("/api/server/status", headers=ADMIN)).json()
    assert admin["sessions"]["total"] == 3
    assert admin["worker"] == body["worker"]


async def test_ping_answers_without_a_key(client: AsyncClient) -> None:
    response = await client.get("/ping")
    assert (response.status_code, response.json()) == (200, {"message": "pong"})


async def test_the_version_is_waha_s_environment(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    assert_error(await client.get("/api/version"), 401)
    for path in ("/api/version", "/api/server/version"):
        response = await client.get(path, headers=key)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["version"] == __version__
        assert body["engine"] == waha_engine(gateway.settings.default_engine)
        assert (body["tier"], body["browser"]) == ("WAGATE", "")
        assert body["platform"] == f"{platform.system().lower()}/{platform.machine()}"
        assert body["worker"]["id"]


async def test_the_environment_is_the_admin_s_and_never_shows_a_secret(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    assert_error(await client.get("/api/server/environment", headers=key), 403, "admin_key_required")
    response = await client.get("/api/server/environment", headers=ADMIN)
    assert response.status_code == 200, response.text
    given = response.json()
    assert given["WAGATE_ADMIN_KEY"] == "***"
    every = (await client.get("/api/server/environment", params={"all": "true"}, headers=ADMIN)).json()
    assert set(given) < set(every)  # what was set, then every setting
    assert all(every[name] == value for name, value in given.items())
    assert every["WAGATE_DEFAULT_ENGINE"] == gateway.settings.default_engine
    assert every["WAGATE_SMTP_PASSWORD"] is None  # not set: null, and set it would be masked
    secrets = [gateway.settings.admin_key, gateway.settings.keys]
    for secret in secrets:
        assert secret is not None
        assert secret.get_secret_value() not in response.text + str(every)
    assert_error(await client.get("/api/server/environment", params={"all": "maybe"}, headers=ADMIN), 422)

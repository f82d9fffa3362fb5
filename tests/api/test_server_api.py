"""``/api/server/status`` over a real store (SQLite and PostgreSQL) and a real Redis, through the real app."""

from __future__ import annotations

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from tests.support.api import ADMIN, assert_error, make_tenant
from tests.support.procs import free_port
from tests.support.services import REDIS_URL, require_redis
from wagate.api.app import create_app
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
        assert_error(await http.get("/api/server/status", headers=a), 403, "admin_key_required")
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
    assert body["requests"] >= 6
    assert body["error_rate"] == 0.0
    assert isinstance(body["uptime_s"], float | int)
    assert {"version", "cpu_percent", "avg_response_ms"} <= set(body)


async def test_status_says_when_redis_is_unreachable(gateway: Gateway) -> None:
    body = await status_with(gateway, f"redis://127.0.0.1:{free_port()}/0")
    assert body["redis"] == {"configured": True, "reachable": False, "error": "ConnectionError"}
    assert "127.0.0.1" not in str(body)  # the URL (which may hold a password) is not echoed

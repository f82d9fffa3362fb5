"""Driving the API in process (through the real ASGI app): tenants, error shapes, a session recorded as working."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.support.builders import ADMIN_KEY
from wagate.crypto.tokens import hash_api_key
from wagate.domain.sessions import Status, StatusChange
from wagate.gateway import Gateway

ADMIN = {"X-Api-Key": ADMIN_KEY}


async def make_tenant(client: AsyncClient, name: str, **extra: Any) -> dict[str, str]:
    response = await client.post("/api/tenants", json={"name": name, **extra}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"X-Api-Key": response.json()["api_key"]}


def assert_error(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"}
    assert body["statusCode"] == status
    assert body["message"] == body["error"]["message"]
    assert set(body["error"]) == {"code", "message"}
    if code is not None:
        assert body["error"]["code"] == code


async def working_session(client: AsyncClient, gateway: Gateway, key: dict[str, str], name: str = "main") -> None:
    """A session recorded as WORKING (no engine runs in these tests: only the API is under test)."""
    made = await client.post("/api/sessions", json={"name": name}, headers=key)
    assert made.status_code == 201
    tenant = await gateway.store.api_keys.find_active(key_hash(key))
    assert tenant is not None
    assert tenant.tenant_id is not None
    session = await gateway.store.sessions.get(tenant.tenant_id, name)
    assert session is not None
    lease = await gateway.store.leases.acquire(session.id, "test#1", 60)
    assert lease is not None
    me = {"phone": "+15550009"}
    change = StatusChange(tenant.tenant_id, session.id, "test#1", lease.epoch, Status.WORKING, me=me)
    await gateway.store.sessions.set_status_many([change])


def key_hash(key: dict[str, str]) -> str:
    return hash_api_key(key["X-Api-Key"])


def text(chat: str = "+15550100", **extra: Any) -> dict[str, Any]:
    return {"session": "main", "chatId": chat, "text": "hi", **extra}

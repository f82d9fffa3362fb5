"""Tenants and API keys through the API."""

from __future__ import annotations

from httpx import AsyncClient

from tests.support.api import ADMIN, assert_error, make_tenant


async def test_create_tenant_returns_key_once(client: AsyncClient) -> None:
    response = await client.post("/api/tenants", json={"name": "acme", "contact_email": "ops@acme.com"}, headers=ADMIN)
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"id", "name", "api_key"}
    assert body["id"].startswith("ten_")
    listed = (await client.get("/api/tenants", headers=ADMIN)).json()
    assert [t["name"] for t in listed] == ["acme"]
    assert "api_key" not in listed[0]
    assert (await client.get(f"/api/tenants/{body['id']}", headers=ADMIN)).json()["contact_email"] == "ops@acme.com"
    keys = (await client.get("/api/keys", headers={"X-Api-Key": body["api_key"]})).json()
    assert len(keys) == 1
    assert body["api_key"] not in str(keys)
    assert body["api_key"].startswith(keys[0]["prefix"])


async def test_tenant_validation(client: AsyncClient) -> None:
    await make_tenant(client, "acme")
    assert_error(await client.post("/api/tenants", json={"name": "acme"}, headers=ADMIN), 409, "tenant_exists")
    for bad in ({}, {"name": ""}, {"name": "x", "contact_email": "not-an-email"}, {"name": "x", "max_sessions": -1}):
        assert_error(await client.post("/api/tenants", json=bad, headers=ADMIN), 422)
    assert_error(await client.get("/api/tenants/ten_" + "0" * 26, headers=ADMIN), 404, "tenant_not_found")
    assert_error(await client.get("/api/tenants/ten_nope", headers=ADMIN), 422, "invalid_request")


async def test_keys_create_revoke_and_isolation(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    b = await make_tenant(client, "b")
    second = await client.post("/api/keys", json={"name": "ci", "isAdmin": True}, headers=a)
    assert second.status_code == 201
    a2 = {"X-Api-Key": second.json()["key"]}
    assert (await client.get("/api/sessions", headers=a2)).status_code == 200
    b_keys = (await client.get("/api/keys", headers=b)).json()
    assert_error(await client.delete(f"/api/keys/{b_keys[0]['id']}", headers=a), 404)
    assert (await client.get("/api/sessions", headers=b)).status_code == 200
    assert (await client.delete(f"/api/keys/{second.json()['id']}", headers=a)).status_code == 200
    assert_error(await client.get("/api/sessions", headers=a2), 401, "invalid_api_key")
    assert (await client.get("/api/sessions", headers=a)).status_code == 200
    tenant_b = (await client.get("/api/tenants", headers=ADMIN)).json()[1]["id"]
    assert_error(await client.post("/api/keys", json={"tenant_id": tenant_b}, headers=a), 403)
    made = await client.post("/api/keys", json={"tenant_id": tenant_b, "name": "by-admin"}, headers=ADMIN)
    assert made.status_code == 201
    assert made.json()["tenant_id"] == tenant_b
    assert_error(await client.post("/api/keys", json={}, headers=ADMIN), 422, "tenant_required")
    assert len((await client.get("/api/keys", headers=ADMIN)).json()) == 3  # the deleted key is not listed


async def test_delete_tenant(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    tenant_id = (await client.get("/api/tenants", headers=ADMIN)).json()[0]["id"]
    await client.post("/api/sessions", json={"name": "s"}, headers=a)
    assert_error(await client.delete(f"/api/tenants/{tenant_id}", headers=ADMIN), 409, "tenant_has_sessions")
    await client.delete("/api/sessions/s", headers=a)
    assert (await client.delete(f"/api/tenants/{tenant_id}", headers=ADMIN)).status_code == 204
    assert_error(await client.get("/api/sessions", headers=a), 401)


async def test_health_ready_docs(client: AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/api/sessions/{name}/history" in spec["paths"]

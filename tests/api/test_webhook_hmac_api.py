"""A webhook endpoint's WAHA-style HMAC key and retry policy through the real ASGI app: taken, checked, sealed at
rest, never shown again, changed and dropped."""

from __future__ import annotations

from httpx import AsyncClient

from tests.support.api import assert_error, make_tenant
from wagate.domain.webhooks import Retries, RetryPolicy
from wagate.gateway import Gateway

URL = "https://hooks.example.com/in"
KEY = "hmac-key-5d3e9b"


async def test_an_hmac_key_and_retries_are_taken_sealed_and_never_shown(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    retries = {"delaySeconds": 3, "attempts": 4, "policy": "exponential"}
    made = await client.post("/api/webhooks", json={"url": URL, "hmac": {"key": KEY}, "retries": retries}, headers=a)
    assert made.status_code == 201, made.text
    assert (made.json()["hmac"], made.json()["retries"]) == (True, retries)
    hook_id = made.json()["id"]
    for response in (
        made,
        await client.get("/api/webhooks", headers=a),
        await client.get(f"/api/webhooks/{hook_id}", headers=a),
    ):
        assert KEY not in response.text
    async with gateway.store.db.read() as conn:  # type: ignore[attr-defined]
        sealed = (await conn.exec_driver_sql("SELECT hmac FROM webhooks")).scalar_one()
    assert KEY.encode() not in bytes(sealed)  # sealed at rest
    found = await gateway.store.webhooks.secret_all_tenants(hook_id)
    assert found is not None
    assert found.hmac_key == KEY
    assert found.webhook.retries == Retries(3.0, 4, RetryPolicy.EXPONENTIAL)

    plain = (await client.post("/api/webhooks", json={"url": URL, "hmac": {"key": None}}, headers=a)).json()
    assert (plain["hmac"], plain["retries"]) == (False, None)  # a null key is no key; no policy: the gateway's
    defaults = await client.post("/api/webhooks", json={"url": URL, "retries": {}}, headers=a)
    assert defaults.json()["retries"] == {"delaySeconds": 2.0, "attempts": 15, "policy": "constant"}  # WAHA's


async def test_an_hmac_key_and_retries_are_changed_and_dropped(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    hook_id = (await client.post("/api/webhooks", json={"url": URL}, headers=a)).json()["id"]
    changed = await client.patch(
        f"/api/webhooks/{hook_id}",
        json={"hmac": {"key": KEY}, "retries": {"delaySeconds": 1, "attempts": 2, "policy": "linear"}},
        headers=a,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["hmac"], changed.json()["retries"]["policy"]) == (True, "linear")
    found = await gateway.store.webhooks.secret_all_tenants(hook_id)
    assert found is not None
    assert found.hmac_key == KEY
    # Another change leaves them be; rotating the secret keeps the key.
    await client.patch(f"/api/webhooks/{hook_id}", json={"headers": {"X-A": "1"}}, headers=a)
    await client.post(f"/api/webhooks/{hook_id}/rotate-secret", json={"previous_valid_for": 0}, headers=a)
    found = await gateway.store.webhooks.secret_all_tenants(hook_id)
    assert found is not None
    assert (found.hmac_key, found.headers, found.webhook.retries) == (
        KEY,
        (("x-a", "1"),),
        Retries(1.0, 2, RetryPolicy.LINEAR),
    )
    dropped = await client.patch(f"/api/webhooks/{hook_id}", json={"hmac": None, "retries": None}, headers=a)
    assert (dropped.json()["hmac"], dropped.json()["retries"]) == (False, None)
    found = await gateway.store.webhooks.secret_all_tenants(hook_id)
    assert found is not None
    assert (found.hmac_key, found.webhook.retries) == (None, None)


async def test_bad_hmac_and_retries_are_refused_and_nothing_is_stored(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    for extra in (
        {"hmac": {"key": "k" * 1025}},
        {"hmac": {"key": "nul\x00"}},
        {"hmac": {"secret": "k"}},
        {"hmac": "k"},
        {"retries": {"policy": "random"}},
        {"retries": {"attempts": -1}},
        {"retries": {"attempts": 101}},
        {"retries": {"delaySeconds": -1}},
        {"retries": {"delaySeconds": 86401}},
        {"retries": {"attempts": 2.5}},
        {"retries": {"when": 1}},
        {"headers": {"X-Webhook-Hmac": "forged"}},  # the gateway's own header
    ):
        assert_error(await client.post("/api/webhooks", json={"url": URL, **extra}, headers=a), 422)
    assert (await client.get("/api/webhooks", headers=a)).json() == []

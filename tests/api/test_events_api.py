"""The webhook and event-history API over a real store (SQLite and PostgreSQL) through the real ASGI app."""

from __future__ import annotations

import base64
import time

from httpx import AsyncClient

from tests.support.api import ADMIN, assert_error, make_tenant
from wagate.domain.events import Event, EventType
from wagate.gateway import Gateway
from wagate.ids import TenantId


async def test_webhook_create_shows_the_secret_once(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    made = await client.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/in", "events": ["session.status", "message.*"], "session": "main"},
        headers=a,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert {"id", "url", "events", "session", "secret"} <= set(body)
    assert (body["url"], body["events"], body["session"], body["enabled"]) == (
        "https://hooks.example.com/in",
        ["session.status", "message.*"],
        "main",
        True,
    )
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
    listed = (await client.get("/api/webhooks", headers=a)).json()
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0]
    fetched = (await client.get(f"/api/webhooks/{body['id']}", headers=a)).json()
    assert "secret" not in fetched
    default = await client.post("/api/webhooks", json={"url": "http://hooks.example.com/all"}, headers=a)
    assert default.json()["events"] == ["*"]
    assert default.json()["secret"] != body["secret"]


async def test_webhook_input_is_checked(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    for url in (
        "ftp://example.com/x",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
        "http://2130706433/",
        "http://10.1.2.3/",
        "https://user:pw@example.com/",
        "not a url",
    ):
        assert_error(await client.post("/api/webhooks", json={"url": url}, headers=a), 422, "invalid_webhook_url")
    bad = [
        {"url": "https://example.com/", "events": ["message.bogus"]},
        {"url": "https://example.com/", "events": "message"},
        {"url": "https://example.com/", "session": "no spaces"},
        {"url": "https://example.com/", "extra": 1},
        {"url": ""},
        {"url": "https://example.com/" + "x" * 3000},
        {},
    ]
    for body in bad:
        assert_error(await client.post("/api/webhooks", json=body, headers=a), 422)
    assert (await client.get("/api/webhooks", headers=a)).json() == []  # nothing half-made


async def test_webhook_headers_are_checked_sealed_and_only_named(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    url = "https://hooks.example.com/in"
    bad = [
        {"Content-Type": "text/plain"},  # the gateway's own
        {"host": "evil.example"},
        {"Webhook-Signature": "v1,forged"},
        {"Transfer-Encoding": "chunked"},
        {"Proxy-Authorization": "Basic x"},
        {"X-A": "1\r\nX-Injected: 1"},  # a second header smuggled in
        {"X-A": "line\nbreak"},
        {"X-A": "nul\x00"},
        {"X-A": ""},
        {"X-A": " padded"},
        {"X-A": "snow \u2603"},  # not Latin-1
        {"X A": "1"},
        {"X:A": "1"},
        {"x" * 65: "1"},
        {"X-A": "v" * 4097},
        {"X-A": "1", "x-a": "2"},  # one name, twice
        {f"X-{n}": "1" for n in range(21)},
        {f"X-{n}": "v" * 4000 for n in range(3)},
        {"X-A": 1},
    ]
    for headers in bad:
        response = await client.post("/api/webhooks", json={"url": url, "headers": headers}, headers=a)
        assert_error(response, 422)
    assert (await client.get("/api/webhooks", headers=a)).json() == []  # nothing half-made

    made = await client.post(
        "/api/webhooks",
        json={"url": url, "headers": {"Authorization": "Bearer tok-4f1c9a", "X-Route": "eu 1\tb"}},
        headers=a,
    )
    assert made.status_code == 201, made.text
    assert made.json()["header_names"] == ["authorization", "x-route"]
    for response in (
        made,
        await client.get("/api/webhooks", headers=a),
        await client.get(f"/api/webhooks/{made.json()['id']}", headers=a),
    ):
        assert "tok-4f1c9a" not in response.text
    async with gateway.store.db.read() as conn:  # type: ignore[attr-defined]
        sealed = (await conn.exec_driver_sql("SELECT headers FROM webhooks")).scalar_one()
    assert b"tok-4f1c9a" not in bytes(sealed)  # sealed at rest
    assert b"authorization" not in bytes(sealed)
    found = await gateway.store.webhooks.secret_all_tenants(made.json()["id"])
    assert found is not None
    assert found.headers == (("authorization", "Bearer tok-4f1c9a"), ("x-route", "eu 1\tb"))


async def test_a_webhook_is_changed_in_place(client: AsyncClient, gateway: Gateway) -> None:
    a, b = await make_tenant(client, "a"), await make_tenant(client, "b")
    made = (
        await client.post(
            "/api/webhooks",
            json={"url": "https://hooks.example.com/in", "session": "main", "headers": {"X-Key": "k1"}},
            headers=a,
        )
    ).json()
    path = f"/api/webhooks/{made['id']}"
    refused = [
        ({"url": "http://10.0.0.1/"}, "invalid_webhook_url"),
        ({"url": None}, "invalid_webhook"),
        ({"events": None}, "invalid_webhook"),
        ({"headers": None}, "invalid_webhook"),
        ({"events": ["message.bogus"]}, None),
        ({"headers": {"Content-Length": "1"}}, None),
        ({"session": "no spaces"}, None),
        ({"secret": "whsec_mine"}, None),
    ]
    for body, code in refused:
        assert_error(await client.patch(path, json=body, headers=a), 422, code)
    assert_error(await client.patch(path, json={"url": "https://b.example.com/"}, headers=b), 404, "webhook_not_found")
    unchanged = (await client.get(path, headers=a)).json()
    assert (unchanged["url"], unchanged["session"], unchanged["header_names"]) == (
        "https://hooks.example.com/in",
        "main",
        ["x-key"],
    )

    moved = await client.patch(path, json={"url": "https://hooks.example.com/v2", "events": ["message.*"]}, headers=a)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["url"], moved.json()["events"], moved.json()["session"], moved.json()["header_names"]) == (
        "https://hooks.example.com/v2",
        ["message.*"],
        "main",  # not given: kept
        ["x-key"],
    )
    widened = (await client.patch(path, json={"session": None, "headers": {"X-Other": "2"}}, headers=a)).json()
    assert (widened["session"], widened["header_names"]) == (None, ["x-other"])
    cleared = (await client.patch(path, json={"headers": {}}, headers=a)).json()
    assert cleared["header_names"] == []
    assert "secret" not in cleared
    found = await gateway.store.webhooks.secret_all_tenants(made["id"])
    assert found is not None
    assert (found.secret, found.headers, found.webhook.url) == (made["secret"], (), "https://hooks.example.com/v2")


async def test_a_webhook_secret_is_rotated_with_an_overlap(client: AsyncClient, gateway: Gateway) -> None:
    a, b = await make_tenant(client, "a"), await make_tenant(client, "b")
    made = (await client.post("/api/webhooks", json={"url": "https://hooks.example.com/in"}, headers=a)).json()
    assert made["previous_secret_valid_until"] is None
    path = f"/api/webhooks/{made['id']}/rotate-secret"
    for body in ({"previous_valid_for": -1}, {"previous_valid_for": 7 * 86400 + 1}, {"secret": "whsec_mine"}):
        assert_error(await client.post(path, json=body, headers=a), 422)
    assert_error(await client.post(path, headers=b), 404, "webhook_not_found")
    found = await gateway.store.webhooks.secret_all_tenants(made["id"])
    assert found is not None
    assert found.secret == made["secret"]  # nothing changed by the refused ones

    before = time.time()
    rotated = await client.post(path, headers=a)  # no body: the default overlap, a day
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != made["secret"]
    assert before + 86400 <= body["previous_secret_valid_until"] <= time.time() + 86400
    fetched = (await client.get(f"/api/webhooks/{made['id']}", headers=a)).json()
    assert "secret" not in fetched
    assert fetched["previous_secret_valid_until"] == body["previous_secret_valid_until"]
    found = await gateway.store.webhooks.secret_all_tenants(made["id"])
    assert found is not None
    assert (found.secret, found.previous_secret) == (body["secret"], made["secret"])
    assert found.secrets(time.time()) == (body["secret"], made["secret"])
    async with gateway.store.db.read() as conn:  # type: ignore[attr-defined]
        sealed = (await conn.exec_driver_sql("SELECT previous_secret FROM webhooks")).scalar_one()
    assert made["secret"].removeprefix("whsec_").encode() not in bytes(sealed)  # sealed at rest

    now = await client.post(path, json={"previous_valid_for": 0}, headers=a)
    assert now.status_code == 200, now.text
    assert now.json()["previous_secret_valid_until"] is None
    found = await gateway.store.webhooks.secret_all_tenants(made["id"])
    assert found is not None
    assert (found.secret, found.previous_secret) == (now.json()["secret"], None)


async def test_webhook_limit_and_tenant_isolation(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    b = await make_tenant(client, "b")
    made = []
    for n in range(gateway.settings.max_webhooks_per_tenant):
        response = await client.post("/api/webhooks", json={"url": f"https://example.com/{n}"}, headers=a)
        assert response.status_code == 201
        made.append(response.json()["id"])
    assert_error(
        await client.post("/api/webhooks", json={"url": "https://example.com/x"}, headers=a), 429, "webhook_limit"
    )
    hook = made[0]
    for method, path in (
        ("GET", f"/api/webhooks/{hook}"),
        ("DELETE", f"/api/webhooks/{hook}"),
        ("POST", f"/api/webhooks/{hook}/enable"),
        ("GET", f"/api/webhooks/{hook}/deliveries"),
        ("POST", f"/api/webhooks/{hook}/redeliver"),
        ("POST", f"/api/webhooks/{hook}/deliveries/1/redeliver"),
    ):
        assert_error(await client.request(method, path, headers=b), 404, "webhook_not_found")
    assert (await client.get("/api/webhooks", headers=b)).json() == []
    assert_error(await client.get("/api/webhooks", headers=ADMIN), 403, "tenant_key_required")
    assert_error(await client.get("/api/webhooks"), 401, "missing_api_key")
    assert (await client.delete(f"/api/webhooks/{hook}", headers=a)).status_code == 204
    assert_error(await client.delete(f"/api/webhooks/{hook}", headers=a), 404)
    assert (await client.post("/api/webhooks", json={"url": "https://example.com/x"}, headers=a)).status_code == 201


async def test_deliveries_and_redelivery_routes(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    await client.post("/api/sessions", json={"name": "main", "start": False}, headers=a)
    hook = (await client.post("/api/webhooks", json={"url": "https://example.com/h"}, headers=a)).json()
    session = (await client.get("/api/sessions/main", headers=a)).json()
    tenant_id = await _tenant_of(gateway, a)
    stored = await gateway.store.sessions.get(tenant_id, session["name"])
    assert stored is not None
    await gateway.store.events.append(
        [Event.new(EventType.MESSAGE, tenant_id, stored.id, "main", gateway.clock(), {"n": n}) for n in (1, 2)]
    )
    listed = (await client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=a)).json()
    assert [(d["state"], d["attempts"], d["event_type"]) for d in listed] == [("pending", 0, "message")] * 2

    async def backlog() -> list[tuple[int, int]]:
        """(pending, dead) as the endpoint and the list of endpoints show them."""
        one = (await client.get(f"/api/webhooks/{hook['id']}", headers=a)).json()
        (every,) = (await client.get("/api/webhooks", headers=a)).json()
        return [(w["pending_deliveries"], w["dead_letters"]) for w in (one, every)]

    assert (hook["pending_deliveries"], hook["dead_letters"]) == (0, 0)
    assert await backlog() == [(2, 0)] * 2
    assert listed[0]["seq"] > listed[1]["seq"]  # newest first
    claimed = await gateway.store.outbox.claim("w#1", takeover="w#", ttl=30, limit=10)
    await gateway.store.outbox.mark_failed(
        claimed[0].delivery.seq, attempts=11, next_attempt_at=0, status=500, error="HTTP 500", dead=True
    )
    dead = (await client.get(f"/api/webhooks/{hook['id']}/deliveries", params={"state": "dead"}, headers=a)).json()
    assert await backlog() == [(1, 1)] * 2
    assert [(d["seq"], d["last_status"], d["next_attempt_at"]) for d in dead] == [(claimed[0].delivery.seq, 500, None)]
    assert dead[0]["event_id"] == claimed[0].delivery.event_id
    assert_error(await client.get(f"/api/webhooks/{hook['id']}/deliveries", params={"state": "x"}, headers=a), 422)
    pending_seq = claimed[1].delivery.seq
    assert_error(
        await client.post(f"/api/webhooks/{hook['id']}/deliveries/{pending_seq}/redeliver", headers=a),
        404,
        "dead_letter_not_found",
    )
    again = await client.post(f"/api/webhooks/{hook['id']}/deliveries/{dead[0]['seq']}/redeliver", headers=a)
    assert again.json() == {"redelivered": 1}
    assert (await client.post(f"/api/webhooks/{hook['id']}/redeliver", headers=a)).json() == {"redelivered": 0}
    assert await backlog() == [(2, 0)] * 2
    other = await make_tenant(client, "b")  # another tenant's endpoints count nothing of a's
    await client.post("/api/webhooks", json={"url": "https://example.com/b"}, headers=other)
    (theirs,) = (await client.get("/api/webhooks", headers=other)).json()
    assert (theirs["pending_deliveries"], theirs["dead_letters"]) == (0, 0)


async def test_a_webhook_shows_why_its_address_is_refused(client: AsyncClient, gateway: Gateway) -> None:
    """The dispatcher's mark (the SSRF guard refused the address) shows on the endpoint and in the list, with its
    time; the same reason again keeps that time; an attempt that gets through clears it."""
    a = await make_tenant(client, "a")
    hook = (await client.post("/api/webhooks", json={"url": "https://hooks.example.com/h"}, headers=a)).json()
    assert (hook["blocked_reason"], hook["blocked_at"]) == (None, None)
    tenant_id = await _tenant_of(gateway, a)
    why = "address_refused: hooks.example.com resolves to 10.0.0.5, a private address"
    before = gateway.clock()
    assert await gateway.store.webhooks.set_blocked(tenant_id, hook["id"], why)
    one = (await client.get(f"/api/webhooks/{hook['id']}", headers=a)).json()
    (listed,) = (await client.get("/api/webhooks", headers=a)).json()
    for shown in (one, listed):
        assert (shown["blocked_reason"], shown["enabled"]) == (why, True)
        assert before <= shown["blocked_at"] <= gateway.clock()
    assert not await gateway.store.webhooks.set_blocked(tenant_id, hook["id"], why)  # nothing new
    assert (await client.get(f"/api/webhooks/{hook['id']}", headers=a)).json()["blocked_at"] == one["blocked_at"]
    other = await make_tenant(client, "b")  # another tenant's key marks nothing of a's
    assert not await gateway.store.webhooks.set_blocked(await _tenant_of(gateway, other), hook["id"], None)
    assert await gateway.store.webhooks.set_blocked(tenant_id, hook["id"], None)
    cleared = (await client.get(f"/api/webhooks/{hook['id']}", headers=a)).json()
    assert (cleared["blocked_reason"], cleared["blocked_at"]) == (None, None)


async def test_event_history_filters_and_pages(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    b = await make_tenant(client, "b")
    for name in ("one", "two"):
        await client.post("/api/sessions", json={"name": name, "start": False}, headers=a)
    tenant_id = await _tenant_of(gateway, a)
    one = await gateway.store.sessions.get(tenant_id, "one")
    two = await gateway.store.sessions.get(tenant_id, "two")
    assert one is not None
    assert two is not None
    now = gateway.clock()
    await gateway.store.events.append(
        [
            Event.new(EventType.MESSAGE, tenant_id, one.id, "one", now, {"n": 1}),
            Event.new(EventType.SESSION_QR, tenant_id, two.id, "two", now, {"expiresAt": now + 60}),
            Event.new(EventType.MESSAGE_ACK, tenant_id, one.id, "one", now, {"id": "X", "status": "read"}),
        ]
    )
    every = (await client.get("/api/events", headers=a)).json()
    assert [e["event"] for e in every] == ["message", "session.qr", "message.ack"]
    assert list(every[0]) == [  # WAHA's envelope, with the tenant beside it
        "id",
        "timestamp",
        "event",
        "session",
        "metadata",
        "me",
        "payload",
        "engine",
        "environment",
        "tenant",
    ]
    assert (every[0]["timestamp"], every[0]["engine"], every[0]["tenant"]) == (round(now * 1000), "GOWS", tenant_id)
    assert every[0]["environment"]["worker"] == {"id": gateway.settings.worker_id}
    assert (await client.get("/api/events", headers=b)).json() == []
    messages = (await client.get("/api/events", params={"types": "message.*"}, headers=a)).json()
    assert [e["event"] for e in messages] == ["message", "message.ack"]
    # message.any takes every message, named so; message and message.any together: each event once, as it is.
    anything = (await client.get("/api/events", params={"types": "message.any"}, headers=a)).json()
    assert [(e["id"], e["event"]) for e in anything] == [(every[0]["id"], "message.any")]
    both = (await client.get("/api/events", params={"types": "message,message.any"}, headers=a)).json()
    assert [e["event"] for e in both] == ["message"]
    not_emitted = await client.get("/api/events", params={"types": "message.reaction"}, headers=a)
    assert (not_emitted.status_code, not_emitted.json()) == (200, [])  # WAHA's, taken; none emitted
    old = await client.get("/api/events", params={"types": "message.received"}, headers=a)
    assert_error(old, 422, "invalid_event_type")
    assert "is now 'message'" in old.json()["message"]
    only_two = (await client.get("/api/events", params={"session": "two"}, headers=a)).json()
    assert [e["session"] for e in only_two] == ["two"]
    page = (await client.get("/api/events", params={"after": every[0]["id"], "limit": 1}, headers=a)).json()
    assert [e["id"] for e in page] == [every[1]["id"]]
    assert_error(await client.get("/api/events", params={"types": "nope"}, headers=a), 422, "invalid_event_type")
    assert_error(await client.get("/api/events", params={"after": "42"}, headers=a), 422, "invalid_event_id")
    assert_error(await client.get("/api/events", params={"session": "ghost"}, headers=a), 404, "session_not_found")
    assert_error(await client.get("/api/events", params={"limit": 0}, headers=a), 422)


async def test_tickets_are_for_tenants(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    made = await client.post("/api/events/ticket", headers=a)
    assert made.status_code == 200
    assert made.json()["ticket"].startswith("wst_")
    assert made.json()["expires_in"] > 0
    assert_error(await client.post("/api/events/ticket", headers=ADMIN), 403, "tenant_key_required")
    assert_error(await client.post("/api/events/ticket"), 401)


async def _tenant_of(gateway: Gateway, key: dict[str, str]) -> TenantId:
    from wagate.services.accounts import authenticate

    principal = await authenticate(gateway.store, gateway.settings, key["X-Api-Key"])
    assert principal is not None
    assert principal.tenant_id is not None
    return principal.tenant_id

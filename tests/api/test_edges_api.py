"""Input at the edges of what the API takes (numbers past what the store holds, NaN and infinities, U+0000, empty
media) is a 422 in the error shape, on SQLite and PostgreSQL, and stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from httpx import AsyncClient

from tests.support.api import ADMIN, assert_error, make_tenant, text, working_session
from wagate.crypto.tokens import hash_api_key
from wagate.domain.messages import Contact, Group
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.net.media import MediaFetcher

TOO_BIG = 2**63  # one past the largest BIGINT
BIGGEST = 2**63 - 1


async def test_integers_past_bigint_are_422(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    assert (await client.post("/api/sessions", json={"name": "main", "start": False}, headers=a)).status_code == 201
    hook = (await client.post("/api/webhooks", json={"url": "http://hooks.example.com/"}, headers=a)).json()["id"]
    for method, path, params in (
        ("GET", "/api/sessions/main/history", {"before": TOO_BIG}),
        ("GET", "/api/sessions/main/history", {"before": 10**30}),
        ("GET", f"/api/webhooks/{hook}/deliveries", {"before": TOO_BIG}),
        ("POST", f"/api/webhooks/{hook}/deliveries/{TOO_BIG}/redeliver", {}),
    ):
        assert_error(await client.request(method, path, params=params, headers=a), 422, "invalid_request")
    history = await client.get("/api/sessions/main/history", params={"before": BIGGEST}, headers=a)
    assert history.status_code == 200
    assert [e["kind"] for e in history.json()] == ["created"]
    deliveries = await client.get(f"/api/webhooks/{hook}/deliveries", params={"before": BIGGEST}, headers=a)
    assert (deliveries.status_code, deliveries.json()) == (200, [])
    missing = await client.post(f"/api/webhooks/{hook}/deliveries/{BIGGEST}/redeliver", headers=a)
    assert_error(missing, 404, "dead_letter_not_found")


async def test_times_that_are_not_finite_are_422(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    assert (await client.post("/api/sessions", json={"name": "main", "start": False}, headers=a)).status_code == 201
    path = "/api/main/chats/+15550100/messages"
    for name in ("filter.timestamp.gte", "filter.timestamp.lte"):
        for value in ("nan", "NaN", "inf", "-inf", "Infinity", "1e400"):
            assert_error(await client.get(path, params={name: value}, headers=a), 422, "invalid_request")
    finite = await client.get(path, params={"filter.timestamp.gte": "0", "filter.timestamp.lte": "1e12"}, headers=a)
    assert (finite.status_code, finite.json()) == (200, [])


async def test_text_with_nul_is_422_and_stores_nothing(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    await working_session(client, gateway, a)
    nul = "a\x00b"
    for path, body in (
        ("/api/sendText", text(text=nul)),
        ("/api/sendFile", {**text(), "text": None, "caption": nul, "file": {"data": "aGk=", "mimetype": "text/plain"}}),
        ("/api/sendFile", {**text(), "text": None, "file": {"url": "http://media.example.com/" + nul}}),
        ("/api/sendFile", {**text(), "text": None, "file": {"data": "aGk=", "mimetype": "text/plain; x=" + nul}}),
        ("/api/webhooks", {"url": "http://hooks.example.com/" + nul}),
        ("/api/sessions", {"name": "other", "config": {"metadata": {"team": nul}}}),
        ("/api/sessions", {"name": "other", "config": {"metadata": {nul: "x"}}}),
    ):
        body = {k: v for k, v in body.items() if v is not None}
        response = await client.post(path, json=body, headers=a)
        assert_error(response, 422, "invalid_request")
        assert "U+0000" in response.json()["error"]["message"] or "pattern" in response.json()["error"]["message"]
    changed = await client.put("/api/sessions/main", json={"config": {"metadata": {"k": nul}}}, headers=a)
    assert_error(changed, 422, "invalid_request")
    hook = (await client.post("/api/webhooks", json={"url": "http://hooks.example.com/"}, headers=a)).json()["id"]
    patched = await client.patch(f"/api/webhooks/{hook}", json={"url": "http://hooks.example.com/" + nul}, headers=a)
    assert_error(patched, 422, "invalid_request")
    assert [w["url"] for w in (await client.get("/api/webhooks", headers=a)).json()] == ["http://hooks.example.com/"]
    assert [s["name"] for s in (await client.get("/api/sessions", params={"all": 1}, headers=a)).json()] == ["main"]
    assert (await client.get("/api/sessions/main", headers=a)).json()["config"]["metadata"] == {}
    chat = await client.get("/api/main/chats/+15550100/messages", headers=a)
    assert chat.json() == []


async def tenant_of(gateway: Gateway, key: dict[str, str]) -> TenantId:
    found = await gateway.store.api_keys.find_active(hash_api_key(key["X-Api-Key"]))
    assert found is not None
    assert found.tenant_id is not None
    return found.tenant_id


@pytest.fixture
async def empty_file() -> AsyncIterator[str]:
    """A loopback HTTP server whose every answer is 200 with an empty body."""

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=b"", content_type="image/png")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/empty.png"
    await runner.cleanup()


async def test_empty_media_is_422_and_queues_nothing(client: AsyncClient, gateway: Gateway, empty_file: str) -> None:
    a = await make_tenant(client, "a")
    await working_session(client, gateway, a)
    guarded = gateway.media
    # the empty file is on loopback
    gateway.media = MediaFetcher(max_bytes=1024, timeout=5, allow_private=True, per_tenant=4, wait=5)
    try:
        for route, file in (
            ("/api/sendImage", {"data": "", "mimetype": "image/png"}),
            ("/api/sendFile", {"data": "", "filename": "a.txt"}),
            ("/api/sendVoice", {"data": "", "mimetype": "audio/ogg"}),
            ("/api/sendImage", {"url": empty_file}),
        ):
            response = await client.post(
                route, json={"session": "main", "chatId": "+15550100", "file": file}, headers=a
            )
            assert_error(response, 422, "empty_media")
        one_byte = {"session": "main", "chatId": "+15550100", "file": {"data": "AA==", "filename": "a.bin"}}
        assert (await client.post("/api/sendFile", json=one_byte, headers=a)).status_code == 201
    finally:
        await gateway.media.close()
        gateway.media = guarded
    chat = (await client.get("/api/main/chats/+15550100/messages", headers=a)).json()
    assert [(m["hasMedia"], m["media"]["filename"]) for m in chat] == [(True, "a.bin")]


async def test_cursors_page_every_list_and_any_cursor_the_document_allows_is_a_position(
    client: AsyncClient, gateway: Gateway
) -> None:
    a = await make_tenant(client, "a")
    await working_session(client, gateway, a)
    session = await gateway.store.sessions.get(await tenant_of(gateway, a), "main")
    assert session is not None
    for n in range(5):
        for _ in range(2):
            sent = await client.post("/api/sendText", json=text(chat=f"+1555010{n}"), headers=a)
            assert sent.status_code == 201, sent.text
    now = gateway.clock()
    contacts = [Contact(f"1555020{n}@s.whatsapp.net", f"c{n}", None, now) for n in range(5)]
    await gateway.store.directory.put_contacts(session.tenant_id, session.id, contacts)
    groups = [Group(f"12036300000000{n}@g.us", f"g{n}", [], now) for n in range(5)]
    await gateway.store.directory.put_groups(session.tenant_id, session.id, groups)
    for path in ("/api/main/chats", "/api/main/contacts", "/api/main/groups", "/api/main/chats/+15550100/messages"):
        everything = (await client.get(path, params={"limit": 500}, headers=a)).json()
        assert len(everything) in (2, 5), path
        paged: list[Any] = []
        following: str | None = f"{path}?limit=2"
        while following:
            page = await client.get(following, headers=a)
            assert page.status_code == 200, page.text
            paged += page.json()
            following = page.links.get("next", {}).get("url")
            assert following is None or "cursor=" in following
        assert paged == everything, path
    for path, cursor in (
        ("/api/main/chats/+15550100/messages", "1_1"),
        ("/api/main/chats/+15550100/messages", "-1e-05_999999999999999999"),
        ("/api/main/chats", "1.5_x"),
        ("/api/main/chats", "-1e-05_x"),
        ("/api/main/chats", "99999999999999999.999999999999999999999999e+99_a_b"),
        ("/api/main/contacts", "zzz"),
        ("/api/main/groups", "\u00e9"),
    ):
        page = await client.get(path, params={"cursor": cursor}, headers=a)
        assert page.status_code == 200, (path, cursor, page.text)
    for path, cursor in (
        ("/api/main/chats/+15550100/messages", "abc"),
        ("/api/main/chats/+15550100/messages", "-1"),
        ("/api/main/chats/+15550100/messages", "1_" + "9" * 19),
        ("/api/main/chats/+15550100/messages", "1e999_1"),
        ("/api/main/chats", "1e999_x"),
        ("/api/main/chats", "nan_x"),
        ("/api/main/chats", "1.5"),
        ("/api/main/contacts", "a\x00"),
        ("/api/main/groups", ""),
    ):
        assert_error(await client.get(path, params={"cursor": cursor}, headers=a), 422, "invalid_cursor")


async def test_malformed_ids_are_422_and_well_formed_missing_ones_404(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    assert (await client.post("/api/sessions", json={"name": "main", "start": False}, headers=a)).status_code == 201
    nul_event = "evt_" + "0" * 25 + "\x00"
    for method, path, params, key in (
        ("GET", "/api/tenants/ten_x", {}, ADMIN),
        ("GET", "/api/keys", {"tenant_id": "ten_x"}, ADMIN),
        ("DELETE", "/api/keys/key_x", {}, a),
        ("GET", "/api/webhooks/whk_x", {}, a),
        ("POST", "/api/sessions/main/backups/bak_x/restore", {}, a),
        ("GET", "/api/main/messages/a%00b", {}, a),
        ("GET", "/api/main/messages/" + "x" * 129, {}, a),
    ):
        assert_error(await client.request(method, path, params=params, headers=key), 422, "invalid_request")
    assert_error(await client.get("/api/events", params={"after": nul_event}, headers=a), 422, "invalid_event_id")
    made = await client.post("/api/keys", json={"tenant_id": "ten_x"}, headers=ADMIN)
    assert_error(made, 422, "invalid_request")
    zeros = "0" * 26
    for method, path, key, code in (
        ("GET", f"/api/tenants/ten_{zeros}", ADMIN, "tenant_not_found"),
        ("DELETE", f"/api/keys/key_{zeros}", a, "key_not_found"),
        ("GET", f"/api/webhooks/whk_{zeros}", a, "webhook_not_found"),
        ("GET", "/api/main/messages/3EB0FFFF", a, "message_not_found"),
    ):
        assert_error(await client.request(method, path, headers=key), 404, code)
    events = await client.get("/api/events", params={"after": f"evt_{zeros}"}, headers=a)
    assert events.status_code == 200

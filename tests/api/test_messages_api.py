"""The messaging API through the real ASGI app on a real store: validation, 404/409 answers, media URLs behind the
SSRF guard, and the media fetcher's limits against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from httpx import AsyncClient

from tests.api.test_sessions_api import make_tenant
from wagate.crypto.tokens import hash_api_key
from wagate.domain.sessions import Status
from wagate.gateway import Gateway
from wagate.messaging.media import MediaError, MediaFetcher
from wagate.store.base import StatusChange


@pytest.fixture
async def media_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback HTTP server: /small.png (1 KiB), /big.bin (2 MiB), /hop -> /small.png, /slow (never answers),
    /lag/3 -> /lag/2 -> /lag/1 -> /small.png (each hop after 0.4 s)."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if request.path == "/small.png":
            return web.Response(body=b"\x89PNG" + b"x" * 1020, content_type="image/png")
        if request.path == "/big.bin":
            return web.Response(body=b"y" * (2 * 1024 * 1024), content_type="application/octet-stream")
        if request.path == "/hop":
            raise web.HTTPFound("/small.png")
        if request.path == "/slow":
            await asyncio.sleep(3)
        if request.path.startswith("/lag/"):
            await asyncio.sleep(0.4)
            left = int(request.path.rsplit("/", 1)[1]) - 1
            raise web.HTTPFound(f"/lag/{left}" if left else "/small.png")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


async def working_session(client: AsyncClient, gateway: Gateway, key: dict[str, str], name: str = "main") -> None:
    """A session recorded as WORKING (no engine runs in these tests: only the API is under test)."""
    made = await client.post("/api/sessions", json={"name": name}, headers=key)
    assert made.status_code == 201
    tenant = await gateway.store.api_keys.find_active(_hash(key))
    assert tenant is not None
    assert tenant.tenant_id is not None
    session = await gateway.store.sessions.get(tenant.tenant_id, name)
    assert session is not None
    lease = await gateway.store.leases.acquire(session.id, "test#1", 60)
    assert lease is not None
    me = {"phone": "+15550009"}
    change = StatusChange(tenant.tenant_id, session.id, "test#1", lease.epoch, Status.WORKING, me=me)
    await gateway.store.sessions.set_status_many([change])


def _hash(key: dict[str, str]) -> str:
    return hash_api_key(key["X-Api-Key"])


def text(chat: str = "+15550100", **extra: Any) -> dict[str, Any]:
    return {"session": "main", "chatId": chat, "text": "hi", **extra}


async def test_bad_requests_get_clear_4xx_answers_and_queue_nothing(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    for body, status, code in (
        (text(chat="not a number"), 422, "invalid_chat_id"),
        (text(chat="123@broadcast"), 422, "invalid_chat_id"),
        ({"session": "main", "chatId": "+15550100"}, 422, "invalid_request"),
        (text(text=""), 422, "invalid_request"),
        (text(extra_field=1), 422, "invalid_request"),
        (text(session="nope"), 404, "session_not_found"),
        (text(session="../x"), 404, "session_not_found"),
    ):
        response = await client.post("/api/sendText", json=body, headers=key)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    for file, code in (
        ({"data": "not base64!"}, "invalid_media"),
        ({"data": "eA==", "url": "https://example.com/a.png"}, "invalid_media"),
        ({}, "invalid_media"),
        ({"data": "eA==", "mimetype": "text/plain"}, "invalid_media"),  # an image must be image/*
        ({"url": "ftp://example.com/a.png"}, "media_url_refused"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "media_url_refused"),
    ):
        body = {"session": "main", "chatId": "+15550100", "file": file}
        response = await client.post("/api/sendImage", json=body, headers=key)
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), response.text
    listed = await client.get("/api/main/chats/+15550100/messages", headers=key)
    assert listed.json() == {"items": [], "next": None}
    for path in ("/api/main/chats?cursor=%%%", "/api/main/chats?cursor=WzFd", "/api/main/contacts?cursor=MQ"):
        response = await client.get(path, headers=key)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_cursor"), path


async def test_queued_message_reads_back_and_a_stopped_session_is_409(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    made = await client.post("/api/sendText", json=text(chat="15550100@c.us", reply_to="ABC"), headers=key)
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["status"], body["chatId"], body["from"], body["replyTo"]) == (
        "pending",
        "15550100@s.whatsapp.net",
        "15550009@s.whatsapp.net",
        "ABC",
    )
    assert (await client.get(f"/api/main/messages/{body['id']}", headers=key)).json() == body
    chats = (await client.get("/api/main/chats", headers=key)).json()
    assert [(c["id"], c["messages"]) for c in chats["items"]] == [("15550100@s.whatsapp.net", 1)]
    await client.post("/api/sessions", json={"name": "off", "start": False}, headers=key)
    refused = await client.post("/api/sendText", json=text(session="off"), headers=key)
    assert refused.status_code == 409
    assert refused.json()["error"]["status"] == "STOPPED"


async def test_media_urls_are_refused_on_internal_addresses_without_a_connection(
    client: AsyncClient, gateway: Gateway, media_server: tuple[str, list[str]]
) -> None:
    base, hits = media_server
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    for url in (f"{base}/small.png", base.replace("127.0.0.1", "localhost") + "/small.png"):
        body = {"session": "main", "chatId": "+15550100", "file": {"url": url}}
        response = await client.post("/api/sendImage", json=body, headers=key)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "media_url_refused"
    assert hits == []  # the guard refused before connecting


async def test_the_fetcher_follows_checked_redirects_and_enforces_size_and_time(
    media_server: tuple[str, list[str]],
) -> None:
    base, hits = media_server
    fetcher = MediaFetcher(max_bytes=1024 * 1024, timeout=1.0, allow_private=True)
    try:
        media = await fetcher.fetch(f"{base}/hop")
        assert (len(media.data), media.mimetype, media.filename) == (1024, "image/png", "small.png")
        for path, code in (
            ("/big.bin", "media_too_large"),
            ("/slow", "media_unavailable"),
            ("/lag/3", "media_unavailable"),  # each hop within the time limit, not the whole fetch
            ("/x", "media_unavailable"),
        ):
            with pytest.raises(MediaError) as caught:
                await fetcher.fetch(base + path)
            assert caught.value.code == code
    finally:
        await fetcher.close()
    assert hits[:2] == ["/hop", "/small.png"]
    guarded = MediaFetcher(max_bytes=1024, timeout=1.0, allow_private=False)
    try:
        with pytest.raises(MediaError) as caught:
            await guarded.fetch(base.replace("127.0.0.1", "localhost") + "/small.png")
        assert caught.value.code == "media_url_refused"
    finally:
        await guarded.close()

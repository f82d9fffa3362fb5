"""The messaging API through the real ASGI app on a real store: validation, 404/409 answers, media URLs behind the
SSRF guard, and the media fetcher's limits against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from httpx import ASGITransport, AsyncClient

from tests.support.api import assert_error, key_hash, make_tenant, text, working_session
from tests.support.builders import make_settings
from tests.support.damage import flip_message_body
from wagate.api.app import create_app
from wagate.gateway import Gateway
from wagate.ids import SessionId, TenantId
from wagate.net.media import MediaBusy, MediaError, MediaFetcher, TenantFetches
from wagate.runtime.node import Node

TENANT = TenantId("ten_test")


@pytest.fixture
async def media_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback HTTP server: /small.png (1 KiB), /big.bin (2 MiB), /hop -> /small.png, /slow (never answers),
    /trickle.png (a byte every 50 ms, for as long as the client reads), /lag/3 -> /lag/2 -> /lag/1 -> /small.png
    (each hop after 0.4 s)."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if request.path == "/trickle.png":
            return await trickle(request)
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


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "image/png"})
    await response.prepare(request)
    for _ in range(1200):  # a minute at most
        if request.transport is None or request.transport.is_closing():
            break
        try:
            await response.write(b"x")
        except ConnectionResetError:
            break
        await asyncio.sleep(0.05)
    return response


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
    assert (listed.json(), listed.headers.get("link")) == ([], None)
    for path in ("/api/main/chats?cursor=%%%", "/api/main/chats?cursor=WzFd", "/api/main/contacts?cursor=%00"):
        response = await client.get(path, headers=key)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_cursor"), path


async def test_queued_message_reads_back_and_a_stopped_session_is_409(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    made = await client.post("/api/sendText", json=text(chat="15550100@c.us", reply_to="ABC"), headers=key)
    assert made.status_code == 201, made.text
    body = made.json()
    bare = body["_data"]["id"]
    assert (body["id"], body["from"], body["to"], body["fromMe"], body["source"]) == (
        f"true_15550100@c.us_{bare}",
        "15550009@c.us",
        "15550100@c.us",
        True,
        "api",
    )
    assert (body["ack"], body["ackName"], body["_data"]["status"], body["body"]) == (0, "PENDING", "pending", "hi")
    assert (body["replyTo"]["id"], body["replyTo"]["hasMedia"]) == ("ABC", False)
    assert isinstance(body["timestamp"], int)
    for wanted in (body["id"], bare):  # WAHA's serialized id, or WhatsApp's
        assert (await client.get(f"/api/main/messages/{wanted}", headers=key)).json() == body
    chats = (await client.get("/api/main/chats", headers=key)).json()
    assert [(c["id"], c["messages"]) for c in chats] == [("15550100@c.us", 1)]
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
    fetcher = MediaFetcher(max_bytes=1024 * 1024, timeout=1.0, allow_private=True, per_tenant=4, wait=1.0)
    try:
        media = await fetcher.fetch(f"{base}/hop", TENANT)
        assert (len(media.data), media.mimetype, media.filename) == (1024, "image/png", "small.png")
        for path, code in (
            ("/big.bin", "media_too_large"),
            ("/slow", "media_unavailable"),
            ("/lag/3", "media_unavailable"),  # each hop within the time limit, not the whole fetch
            ("/x", "media_unavailable"),
        ):
            with pytest.raises(MediaError) as caught:
                await fetcher.fetch(base + path, TENANT)
            assert caught.value.code == code
    finally:
        await fetcher.close()
    assert hits[:2] == ["/hop", "/small.png"]
    guarded = MediaFetcher(max_bytes=1024, timeout=1.0, allow_private=False, per_tenant=4, wait=1.0)
    try:
        with pytest.raises(MediaError) as caught:
            await guarded.fetch(base.replace("127.0.0.1", "localhost") + "/small.png", TENANT)
        assert caught.value.code == "media_url_refused"
    finally:
        await guarded.close()


def image(url: str) -> dict[str, Any]:
    return {"session": "main", "chatId": "+15550100", "file": {"url": url}}


async def test_a_tenants_slow_media_host_neither_delays_another_tenant_nor_takes_more_than_its_share(
    tmp_path: Path, media_server: tuple[str, list[str]]
) -> None:
    """Tenant A names a host that trickles its bytes, in more concurrent sends than the fetcher's shared connection
    pool holds: A gets its share of fetches (each ends at the time limit), its other sends a 429 with Retry-After
    once they waited their bounded time; tenant B's send from a fast host meanwhile goes through at once."""
    base, hits = media_server
    settings = make_settings(
        tmp_path,
        webhook_allow_private=True,  # the media servers are on loopback
        media_fetch_timeout=4.0,
        media_fetch_per_tenant=4,
        media_fetch_wait=0.5,
    )
    gateway = await Gateway.open(settings)
    app = create_app(Node(gateway, supervise=False))
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://wagate.test") as client:
            a, b = await make_tenant(client, "a"), await make_tenant(client, "b")
            await working_session(client, gateway, a)
            await working_session(client, gateway, b)
            alone = time.monotonic()
            assert (await client.post("/api/sendImage", json=image(f"{base}/small.png"), headers=b)).status_code == 201
            alone = time.monotonic() - alone

            slow = [
                asyncio.ensure_future(client.post("/api/sendImage", json=image(f"{base}/trickle.png"), headers=a))
                for _ in range(60)  # more than the 50 connections of the fetcher's pool
            ]
            deadline = time.monotonic() + 5
            while hits.count("/trickle.png") < 4:
                assert time.monotonic() < deadline, hits
                await asyncio.sleep(0.02)
            started = time.monotonic()
            fast = await client.post("/api/sendImage", json=image(f"{base}/small.png"), headers=b)
            took = time.monotonic() - started
            assert fast.status_code == 201, fast.text
            assert took < 1.5, f"tenant b's send took {took:.2f}s behind tenant a's slow host ({alone:.2f}s alone)"
            assert not all(s.done() for s in slow)  # a's fetches were still going on

            answers = await asyncio.gather(*slow)
            assert len(gateway.media.turns) == 0  # nothing kept of a tenant once its fetches are over
    finally:
        await gateway.close()
    assert hits.count("/trickle.png") == 4  # a's share, not the pool
    codes = sorted((r.status_code, r.json()["error"]["code"]) for r in answers)
    assert codes == [(422, "media_unavailable")] * 4 + [(429, "media_fetch_busy")] * 56
    for busy in (r for r in answers if r.status_code == 429):
        assert_error(busy, 429, "media_fetch_busy")
        assert 1 <= int(busy.headers["retry-after"]) <= 4  # by then one of a's fetches has ended, at the latest


async def test_with_no_wait_a_busy_tenant_is_answered_at_once_and_others_are_not() -> None:
    turns = TenantFetches(per_tenant=1, wait=0, timeout=30)
    async with turns.turn(TENANT), turns.turn(TenantId("ten_other")):  # another tenant has turns of its own
        started = time.monotonic()
        with pytest.raises(MediaBusy) as busy:
            async with turns.turn(TENANT):
                pass
        assert time.monotonic() - started < 0.5
    assert (busy.value.status_code, busy.value.headers) == (429, {"Retry-After": "30"})
    assert len(turns) == 0
    async with turns.turn(TENANT):  # free again
        assert len(turns) == 1


async def test_a_damaged_body_is_listed_as_unreadable_and_logged_once(
    client: AsyncClient, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    ids = []
    for n in range(1, 6):
        made = await client.post("/api/sendText", json=text(text=f"secret words #{n}", reply_to="R1"), headers=key)
        assert made.status_code == 201, made.text
        ids.append(made.json()["_data"]["id"])
    message = await gateway.store.messages.get(*await _session_of(gateway, key), ids[2])
    assert message is not None
    await flip_message_body(gateway.store, message.session_id, ids[2])

    caplog.set_level(logging.ERROR, logger="wagate")
    listed = await client.get("/api/main/chats/+15550100/messages", headers=key)
    assert listed.status_code == 200, listed.text
    items = listed.json()
    assert [m["_data"]["id"] for m in items] == ids[::-1]  # the order is kept, nothing is left out
    damaged = items[2]
    assert damaged["_data"]["unreadable"] is True
    assert (damaged["body"], damaged["replyTo"], damaged.get("media")) == ("", None, None)
    assert (damaged["_data"]["status"], damaged["to"]) == ("pending", "15550100@c.us")  # its metadata stays
    readable = [m["body"] for m in items if not m["_data"]["unreadable"]]
    assert readable == [f"secret words #{n}" for n in (5, 4, 2, 1)]

    pages: list[str] = []
    path: str | None = "/api/main/chats/+15550100/messages?limit=2"  # paging walks over it too
    while path:
        page = await client.get(path, headers=key)
        assert page.status_code == 200, page.text
        pages += [m["_data"]["id"] for m in page.json()]
        path = page.links.get("next", {}).get("url")
    assert pages == ids[::-1]

    single = await client.get(f"/api/main/messages/{ids[2]}", headers=key)
    assert (single.status_code, single.json()["error"]["code"]) == (422, "message_unreadable")
    assert (await client.get(f"/api/main/messages/{ids[1]}", headers=key)).json()["body"] == "secret words #2"
    assert (await client.get("/api/main/chats", headers=key)).status_code == 200

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not at every read
    logged = errors[0].getMessage()
    assert ids[2] in logged
    assert message.session_id in logged
    assert "secret" not in logged


async def _session_of(gateway: Gateway, key: dict[str, str], name: str = "main") -> tuple[TenantId, SessionId]:
    found = await gateway.store.api_keys.find_active(key_hash(key))
    assert found is not None
    assert found.tenant_id is not None
    session = await gateway.store.sessions.get(found.tenant_id, name)
    assert session is not None
    return found.tenant_id, session.id

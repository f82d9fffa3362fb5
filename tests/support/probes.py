"""Reading a running stack from outside, as its users do: WebSocket events, paged lists, the event history, the
metrics, webhook endpoints, and the auth state stored in its database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.stack import Stack
from wagate.config import Settings
from wagate.gateway import Gateway

HOOKS = {"WAGATE_WEBHOOK_ALLOW_PRIVATE": "1", "WAGATE_WEBHOOK_POLL_INTERVAL": "0.2"}


def ws_url(stack: Stack, query: str = "") -> str:
    assert stack.gateway is not None
    return stack.gateway.base_url.replace("http://", "ws://") + "/ws" + (f"?{query}" if query else "")


def add_webhook(stack: Stack, key: dict[str, str], url: str, **extra: Any) -> dict[str, Any]:
    assert stack.gateway is not None
    made = loopback.post(stack.gateway.base_url + "/api/webhooks", json={"url": url, **extra}, headers=key)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def read_until(ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool], timeout: float) -> list[Any]:
    got: list[dict[str, Any]] = []
    while not done(got):
        got.append(json.loads(ws.recv(timeout=timeout)))
    return got


def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; its close code."""
    try:
        for _ in range(100_000):
            ws.recv(timeout=10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError("the server did not close the connection")


def pages(stack: Stack, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list, following its ``Link: rel="next"`` to the end."""
    items: list[dict[str, Any]] = []
    with stack.http as http:
        response = http.get(path, params={"limit": limit, **params})
        while True:
            assert response.status_code == 200, response.text
            items.extend(response.json())
            following = response.links.get("next", {}).get("url")
            if following is None:
                return items
            response = http.get(following)


def all_events(stack: Stack, types: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = None
    with stack.http as http:
        while True:
            params: dict[str, str | int] = {"types": types, "limit": 1000}
            if after:
                params["after"] = after
            page = http.get("/api/events", params=params).json()
            events.extend(page)
            if len(page) < 1000:
                return events
            after = page[-1]["id"]


def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics``, parsed by prometheus-client's own parser: (sample name, labels) -> value."""
    assert stack.gateway is not None
    response = loopback.get(stack.gateway.base_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def stored_records(tmp: Path, name: str) -> list[tuple[str, str, bytes]]:
    """The decrypted auth state of a session, read straight from the gateway's database."""

    async def read() -> list[tuple[str, str, bytes]]:
        settings = Settings.model_validate({"data_dir": tmp / "data", "keys": TEST_KEK})
        gateway = await Gateway.open(settings)
        try:
            for tenant in await gateway.store.tenants.list_all():
                session = await gateway.store.sessions.get(tenant.id, name)
                if session is not None:
                    return await gateway.vaults.open(tenant.id, session.id, owner="reader", epoch=0).get_all()
            raise AssertionError(f"no session named {name}")
        finally:
            await gateway.close()

    return asyncio.run(read())

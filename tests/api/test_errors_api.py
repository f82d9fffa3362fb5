"""An exception that no handler expects answers a JSON 500 and leaves the kept-alive connection usable, through a
real uvicorn server on loopback and a client that reuses its connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn

from tests.support import loopback
from tests.support.procs import free_port
from wagate.api.app import create_app
from wagate.api.scopes import NEEDS, PUBLIC
from wagate.gateway import Gateway
from wagate.runtime.node import Node
from wagate.runtime.server import GatewayServer


@pytest.fixture
async def served(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The real app with one more route that fails as a bug would, served by uvicorn on loopback."""
    app = create_app(Node(gateway, supervise=False))
    monkeypatch.setitem(NEEDS, ("GET", "/fails"), PUBLIC)  # as every route declares what its caller needs

    @app.get("/fails")
    async def fails() -> None:
        raise ZeroDivisionError("a bug")

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = GatewayServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


class Ports:
    """The client's own port of the connection that carried each response, read as its headers arrive."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, response: httpx.Response) -> None:
        self.seen.append(response.extensions["network_stream"].get_extra_info("client_addr")[1])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_unexpected_exception_is_json_500_and_keeps_the_connection(
    served: str, caplog: pytest.LogCaptureFixture
) -> None:
    ports = Ports()
    hooks: dict[str, list[Callable[..., Any]]] = {"response": [ports]}
    async with loopback.async_client(
        base_url=served, limits=httpx.Limits(max_connections=1), event_hooks=hooks
    ) as http:
        with caplog.at_level(logging.ERROR, logger="wagate.api"):
            failed = await http.get("/fails")
        assert failed.status_code == 500
        assert failed.headers["content-type"] == "application/json"
        assert failed.json() == {
            "statusCode": 500,
            "message": "internal error",
            "error": {"code": "internal_error", "message": "internal error"},
        }
        assert "a bug" not in failed.text
        logged = [r for r in caplog.records if r.name == "wagate.api" and r.exc_info]
        assert [r.getMessage() for r in logged] == ["unhandled ZeroDivisionError on GET /fails"]
        await asyncio.sleep(0.05)  # a server that closes the connection has done so by now
        after = await http.get("/health")
        assert after.status_code == 200
        first, second = ports.seen
        assert first == second, "the server closed the connection after the 500"

"""``wagate sim-server``: the simulator as its own process.

aiohttp serves the device sockets at ``/ws`` itself, because the simulator must log in ten thousand devices at once
(a restore benchmark) and an ASGI WebSocket costs it about three times the CPU per connection; every other request
goes, unchanged, to the control API (the same ASGI app that ``wagate serve --demo`` mounts).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from aiohttp import WSMsgType, web
from starlette.types import ASGIApp, Message

from wagate.engines.sim.app import CONTROL_MAX_BODY, create_sim_app, key_access
from wagate.engines.sim.server import Link, LinkClosed, SimServer
from wagate.tuning import tune_gc

__all__ = ["MAX_FRAME", "run_sim_server", "sim_web_app"]

log = logging.getLogger("wagate.sim")

MAX_FRAME = 8 * 1024 * 1024
_HOP_BY_HOP = {b"content-length", b"transfer-encoding", b"connection"}


async def _device_socket(server: SimServer, request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, compress=False)
    await ws.prepare(request)

    async def receive() -> str:
        message = await ws.receive()
        if message.type is WSMsgType.TEXT:
            return str(message.data)
        if message.type is WSMsgType.BINARY:
            await ws.close(code=1003, message=b"text frames only")
        raise LinkClosed

    async def close(code: int, reason: str) -> None:
        await ws.close(code=code, message=reason.encode())

    try:
        await server.run_link(Link(ws.send_str, close), receive)
    finally:
        await ws.close()
    return ws


def _asgi_handler(app: ASGIApp) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler that answers with an ASGI app (plain HTTP requests, whole bodies: the control API)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": f"{request.version.major}.{request.version.minor}",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.rel_url.raw_path.encode(),
            "query_string": request.rel_url.raw_query_string.encode(),
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.raw_headers],
            "client": (request.remote or "", 0),
            "server": (sockname[0], sockname[1]) if sockname else None,
        }
        sent_request = False
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Future()  # nothing more comes: the app answers before it asks again
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = int(message["status"]), list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await app(scope, receive, send)
        response = web.Response(status=status, body=b"".join(chunks))
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
        return response

    return handle


def sim_web_app(server: SimServer, key: str | None = None) -> web.Application:
    """The simulator's web app; with ``key``, its control API needs ``X-Api-Key: key``."""
    app = web.Application(client_max_size=CONTROL_MAX_BODY)
    access = key_access(key) if key else None
    control = _asgi_handler(create_sim_app(server, manage_lifecycle=False, access=access))

    async def device(request: web.Request) -> web.StreamResponse:
        return await _device_socket(server, request)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await server.start()
        yield
        await server.stop()

    app.router.add_get("/ws", device)
    app.router.add_route("*", "/{tail:.*}", control)
    app.cleanup_ctx.append(lifecycle)
    return app


def run_sim_server(server: SimServer, host: str, port: int, key: str | None = None) -> bool:
    """Serve the simulator until SIGTERM/SIGINT (then its state is saved); False if it could not start."""

    async def main() -> bool:
        runner = web.AppRunner(sim_web_app(server, key), handle_signals=False, shutdown_timeout=5)
        try:
            await runner.setup()
        except Exception:  # the state file cannot be read, say: the operator reads why
            log.exception("the simulator could not start")
            return False
        try:
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as exc:
                log.error("cannot listen on %s:%d: %s", host, port, exc)
                return False
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            log.info("simulator listening on http://%s:%d", host, port)
            tune_gc()
            await stop.wait()
            return True
        finally:
            await runner.cleanup()

    return uvloop.run(main())

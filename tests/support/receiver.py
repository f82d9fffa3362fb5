"""A webhook receiver on loopback (a real aiohttp server) that records every request and answers as told."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() at arrival

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def envelope(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    def verify(self, secret: str) -> dict[str, Any]:
        """The standardwebhooks package's own verifier; raises WebhookVerificationError."""
        verified: dict[str, Any] = Verifier(secret).verify(self.body, self.headers)
        return verified


Answer = Callable[[Received], "web.StreamResponse | None"]


@dataclass
class Receiver:
    """Answers 200 unless ``answer`` returns another response (or ``delay`` makes it slow)."""

    answer: Answer | None = None
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # path -> secret: verified on arrival when set
    verified: int = 0
    failures: list[str] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event | None = None
    _runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.arrived = asyncio.Event()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(request.path, dict(request.headers), await request.read(), time.time())
        headers = {k.lower(): v for k, v in got.headers.items()}
        got = Received(got.path, headers, got.body, got.at)
        self.received.append(got)
        secret = self.secrets.get(got.path)
        if secret is not None:
            try:
                got.verify(secret)
                self.verified += 1
            except WebhookVerificationError as exc:
                self.failures.append(f"{got.webhook_id}: {exc}")
        assert self.arrived is not None
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answer is not None:
            response = self.answer(got)
            if response is not None:
                return response
        return web.Response(status=204)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests have arrived in all."""
        assert self.arrived is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"{len(self.received)} of {count} requests arrived within {timeout}s")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                continue
        return self.received


class ThreadedReceiver:
    """A :class:`Receiver` on its own event loop in a thread, for tests that drive real processes."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self._loop).result(10)
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

"""Webhook requests signed and sent by a child process, so that the gateway's own process keeps its CPU for the rest.

The webhook side (the signature, the request and its answer, and the kernel's share of every round trip) was about
half of the gateway's CPU per event: a burst of 60,000 received messages took 4.7-4.8 s of its CPU with no webhook
and 9.5-10.3 s with one, all of it under the one GIL that SQLite's writer thread needs too. :class:`WebhookProcess`
hands the child (``python -m wagate.webhooks.process``) *runs*: the due deliveries of one group (endpoint, session),
oldest first. The child sends them one after the other and stops at the first that fails, so the order of a
session's events holds without a round trip between the processes per request; the answer says, for each, delivered,
failed (with the status, ``Retry-After`` and error), refused by the SSRF guard or not attempted. A refused one does
not stop the run: it never reached the receiver, and the dispatcher makes it a dead letter at once, so the next one
is tried on its own. Everything that decides stays with the dispatcher in the gateway: what is due, retries, 410,
dead letters, what is recorded. The child (:mod:`wagate.webhooks.child`) signs with the endpoint's secret and
sends through :class:`~wagate.webhooks.client.WebhookClient`, SSRF guard included; what crosses the pipes is
laid out in :mod:`wagate.webhooks.frames`.

Each request is signed at the dispatcher's time plus what the child's monotonic clock has run since the run arrived
(tests drive the dispatcher's clock). The child ignores SIGINT and SIGTERM: the gateway stops it, after its own
graceful stop, by closing its input; the child then answers what it has not started as not attempted and exits, as it
also does when the gateway dies, even by SIGKILL. If the child dies, the delivery it was sending fails (and is
retried on the schedule like any failure), and the next run starts a new child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, cast

from wagate.domain.webhooks import Headers
from wagate.logs import LogFormat
from wagate.webhooks.client import Attempt
from wagate.webhooks.frames import BROKEN, HEARTBEAT, MAX_RUN, PROTOCOL, FrameReader, TurnWriter, decode_answer, frame

__all__ = ["MAX_RUN", "PROTOCOL", "WebhookProcess", "frame"]

log = logging.getLogger("wagate.webhooks")

_MAX_ENDPOINTS = 10_000
# A child silent (no answer, no heartbeat) for the request timeout and _GRACE more while it holds runs is taken as
# stuck and replaced. (A run may take long: up to MAX_RUN requests to a slow endpoint.)
_GRACE = 10.0


class _ChildPipes(asyncio.SubprocessProtocol):
    def __init__(self, sender: WebhookProcess) -> None:
        self._sender = sender
        self._reader = FrameReader(sender._answered)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self._sender.heard = time.monotonic()
            try:
                self._reader.feed(data)
            except BROKEN:
                log.exception("the webhook sender process sent a broken frame; replacing it")
                self._sender._kill()

    def process_exited(self) -> None:
        self._sender._exited(self)


class _Run:
    __slots__ = ("future", "size")

    def __init__(self, future: asyncio.Future[list[Attempt | None]], size: int) -> None:
        self.future = future
        self.size = size


class WebhookProcess:
    """The gateway's handle on its webhook sender process. :meth:`run` sends a group's deliveries in order."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        concurrency: int,
        log_level: str = "WARNING",
        log_format: LogFormat = LogFormat.TEXT,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.concurrency = concurrency
        self.log_level = log_level
        self.log_format = log_format  # the child writes its lines to the gateway's stderr, in the gateway's format
        self._transport: asyncio.SubprocessTransport | None = None
        self._pipes: _ChildPipes | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._starting = asyncio.Lock()
        self._endpoints: dict[tuple[str, tuple[str, ...], Headers, str | None], int] = {}
        self._runs: dict[int, _Run] = {}
        self._token = 0
        self._writer = TurnWriter(lambda: self._stdin)
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False
        self.heard = 0.0  # when the child last wrote anything (an answer or a heartbeat)
        self.started = 0  # child processes started so far

    @property
    def pid(self) -> int | None:
        return None if self._transport is None else self._transport.get_pid()

    async def start(self) -> None:
        async with self._starting:
            if self._transport is not None or self._closed:
                return
            args = [sys.executable, "-m", "wagate.webhooks.process", "--protocol", str(PROTOCOL)]
            args += ["--timeout", repr(self.timeout)]
            args += ["--concurrency", str(self.concurrency)] + (["--allow-private"] if self.allow_private else [])
            args += ["--log-level", self.log_level, "--log-format", self.log_format.value]
            transport, pipes = await asyncio.get_running_loop().subprocess_exec(
                lambda: _ChildPipes(self), *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            # uvloop's pipe transports are not asyncio's classes; what is used of them is write() and close()
            self._stdin = cast(asyncio.WriteTransport, transport.get_pipe_transport(0))
            self._transport, self._pipes = transport, pipes
            self._endpoints.clear()
            self.started += 1
            if self._watchdog is None:
                self._watchdog = asyncio.ensure_future(self._watch())

    async def run(
        self,
        url: str,
        secrets: tuple[str, ...],
        deliveries: Sequence[tuple[str, bytes]],
        now: float,
        headers: Headers = (),
        hmac_key: str | None = None,
    ) -> list[Attempt | None]:
        """Send ``deliveries`` ((event id, body), oldest first, at most :data:`MAX_RUN`) to ``url``, signed with each
        of ``secrets`` (and ``hmac_key``, WAHA's way) and with the endpoint's own ``headers``, one after the other,
        stopping at the first that fails (one the SSRF guard refuses does not stop it): an attempt for each one
        tried, None for the rest."""
        if self._transport is None:
            try:
                await self.start()
            except OSError as exc:
                return self._failed(len(deliveries), f"the webhook sender process cannot start: {exc}"[:300])
            if self._transport is None:
                return self._failed(len(deliveries), "the webhook sender is stopped")
        key = (url, secrets, headers, hmac_key)
        index = self._endpoints.get(key)
        if index is None:
            if len(self._endpoints) >= _MAX_ENDPOINTS:
                self._endpoints.clear()  # indexes are reused from 0; the child replaces its entries as they come
            index = self._endpoints[key] = len(self._endpoints)
            self._writer.send(frame("E", index, url, secrets, headers, hmac_key))
        self._token += 1
        token = self._token
        future: asyncio.Future[list[Attempt | None]] = asyncio.get_running_loop().create_future()
        if not self._runs:
            self.heard = time.monotonic()  # silence while it had nothing to do does not count
        self._runs[token] = _Run(future, len(deliveries))
        self._writer.send(frame("R", token, index, now, deliveries))
        return await future

    @staticmethod
    def _failed(size: int, why: str) -> list[Attempt | None]:
        return [Attempt(False, error=why), *([None] * (size - 1))]

    def _answered(self, message: list[Any]) -> None:
        if message[0] != "A":
            return
        token, attempts = decode_answer(message)
        run = self._runs.pop(token, None)
        if run is not None and not run.future.done():
            run.future.set_result((attempts + [None] * run.size)[: run.size])

    def _exited(self, pipes: _ChildPipes) -> None:
        if pipes is not self._pipes:
            return
        transport = self._transport
        code = transport.get_returncode() if transport is not None else None
        if transport is not None:
            transport.close()
        if not self._closed:
            log.warning("the webhook sender process exited (code %s); a new one starts with the next run", code)
        self._transport = self._pipes = self._stdin = None
        self._writer.clear()  # frames for the child that died: its runs are failed below, the next child starts afresh
        self._fail_all(f"the webhook sender process exited (code {code})")

    def _fail_all(self, why: str) -> None:
        runs, self._runs = self._runs, {}
        for run in runs.values():
            if not run.future.done():
                run.future.set_result(self._failed(run.size, why))

    def _kill(self) -> None:
        if self._transport is not None:
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(HEARTBEAT)
            if self._runs and time.monotonic() - self.heard > self.timeout + _GRACE:
                log.warning("the webhook sender process stopped answering; replacing it")
                self.heard = time.monotonic()
                self._kill()

    async def close(self, grace: float = 2.0) -> None:
        """Let the child finish the requests it has started (up to ``grace`` seconds) and stop it."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        transport = self._transport
        if transport is None:
            return
        self._writer.flush()
        if self._stdin is not None:
            self._stdin.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while transport.get_returncode() is None and loop.time() < deadline:  # noqa: ASYNC110 - no awaitable exit
            await asyncio.sleep(0.02)
        if transport.get_returncode() is None:
            self._kill()
        transport.close()
        self._fail_all("the webhook sender stopped")


if __name__ == "__main__":
    from wagate.webhooks.child import main

    main()

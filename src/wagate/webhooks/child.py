"""The webhook sender child's side (``python -m wagate.webhooks.process``): runs read from its input, sent in
order through :class:`~wagate.webhooks.client.WebhookClient`, answered on its output.

It ignores SIGINT and SIGTERM: the gateway stops it by closing its input, after which it finishes the requests it is
in, answers the rest as not attempted and exits (as it also does when the gateway dies, even by SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

from standardwebhooks import Webhook as Signer

from wagate.domain.webhooks import Headers
from wagate.logs import LOG_LEVELS, LogFormat, configure_logging
from wagate.tasks import TaskSet
from wagate.webhooks.client import Attempt, WebhookClient, signed_headers
from wagate.webhooks.frames import BROKEN, HEARTBEAT, PROTOCOL, FrameReader, TurnWriter, encode_answer, frame

__all__ = ["main"]

log = logging.getLogger("wagate.webhooks")


class _Child:
    def __init__(self, client: WebhookClient, output: asyncio.WriteTransport) -> None:
        self.client = client
        self.endpoints: dict[int, tuple[str, list[Signer], Headers, str | None]] = {}
        self.tasks = TaskSet()
        self.stopping = False
        self.writer = TurnWriter(lambda: output)

    def on_frame(self, message: list[Any]) -> None:
        kind = message[0]
        if kind == "E":
            _, index, url, secrets, headers, key = message
            signers = [Signer(str(secret)) for secret in secrets]
            own = tuple((str(name), str(value)) for name, value in headers)
            self.endpoints[int(index)] = (str(url), signers, own, None if key is None else str(key))
        elif kind == "R":
            _, token, index, now, runs = message
            deliveries = [(str(event_id), bytes(body)) for event_id, body in runs]
            # The endpoint as it is now: a later E frame may give its index to another endpoint meanwhile.
            endpoint = self.endpoints.get(int(index))
            self.tasks.spawn(self._run(int(token), endpoint, float(now), deliveries), f"run-{token}")

    async def _run(
        self,
        token: int,
        endpoint: tuple[str, list[Signer], Headers, str | None] | None,
        now: float,
        deliveries: list[tuple[str, bytes]],
    ) -> None:
        arrived = time.monotonic()
        attempts: list[Attempt | None] = []
        for event_id, body in deliveries:
            if self.stopping:
                break
            at = now + (time.monotonic() - arrived)
            try:
                if endpoint is None:
                    raise LookupError("a run for an endpoint the sender was never told of")
                url, signers, own, key = endpoint
                headers = dict(own)
                headers.update(signed_headers(signers, event_id, at, body.decode(), key))
                attempt = await self.client.post(url, body, headers, at)
            except Exception as exc:  # this delivery fails; the child goes on
                attempt = Attempt(False, error=f"{type(exc).__name__}: {exc}"[:300])
            attempts.append(attempt)
            if not attempt.ok and not attempt.refused:  # a refused one reached nobody: the next goes on its own
                break
        self.writer.send(encode_answer(token, attempts + [None] * (len(deliveries) - len(attempts))))


class _Input(asyncio.Protocol):
    def __init__(self, child: _Child, done: asyncio.Future[None]) -> None:
        self._reader = FrameReader(child.on_frame)
        self._done = done

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
        except BROKEN:  # UnicodeDecodeError too
            log.exception("a broken frame from the gateway; stopping")
            self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(None)


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    client = WebhookClient(timeout=args.timeout, allow_private=args.allow_private, concurrency=args.concurrency)
    output, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(1, "wb", buffering=0, closefd=False))
    child = _Child(client, output)
    done: asyncio.Future[None] = loop.create_future()
    stdin = os.fdopen(0, "rb", buffering=0, closefd=False)
    reading, _ = await loop.connect_read_pipe(lambda: _Input(child, done), stdin)
    pruning = asyncio.ensure_future(_prune_every(client, 30.0))
    beating = asyncio.ensure_future(_beat(child))
    try:
        await done
        child.stopping = True  # runs finish the request they are in and answer the rest as not attempted
        await child.tasks.wait(args.timeout + 1)
        child.writer.flush()
    finally:
        pruning.cancel()
        beating.cancel()
        reading.close()
        await client.close()
        output.close()


async def _beat(child: _Child) -> None:
    """Tell the gateway this loop is alive while it holds runs (a run to a slow endpoint answers only at its end)."""
    while True:
        await asyncio.sleep(HEARTBEAT)
        if child.tasks:
            child.writer.send(frame("H"))


async def _prune_every(client: WebhookClient, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        client.prune()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="wagate's webhook sender (started by the gateway)")
    parser.add_argument("--protocol", type=int, choices=[PROTOCOL], required=True, help="the frames' layout")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--allow-private", action="store_true")
    parser.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS)
    parser.add_argument("--log-format", type=LogFormat, default=LogFormat.TEXT, choices=list(LogFormat))
    args = parser.parse_args(argv)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    configure_logging(args.log_level, args.log_format)
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    runner(_serve(args))

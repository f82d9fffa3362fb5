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
dead letters, what is recorded. The child signs with the
endpoint's secret and sends through :class:`~wagate.webhooks.client.WebhookClient`, SSRF guard included.

Both directions carry msgpack arrays, one after another on the pipe (msgpack frames itself, so the stream needs no
length prefix), the first item naming the kind:

- to the child, ``["E", index, url, secrets, headers]``: an endpoint (the secrets it signs with, its own headers as
  ``[name, value]`` pairs) under an index that runs refer to; ``["R", token, index, now, [[event_id, body], ...]]``:
  a run, with the dispatcher's time;
- from the child, ``["A", token, [[outcome, status, retry_after, error], ...]]``: the run's answer, per delivery
  (outcome 0 not attempted, 1 delivered, 2 failed, 3 refused by the SSRF guard; status and Retry-After in seconds
  or nil); ``["H"]`` every second while it holds runs: a child silent for the request timeout and ten seconds more
  is taken as stuck and replaced.

The child is started with ``--protocol`` naming this layout (:data:`PROTOCOL`): a child of another version of the
package (one installed over the running gateway) refuses to start rather than misread the frames.

Each request is signed at the dispatcher's time plus what the child's monotonic clock has run since the run arrived
(tests drive the dispatcher's clock). The child ignores SIGINT and SIGTERM: the gateway stops it, after its own
graceful stop, by closing its input; the child then answers what it has not started as not attempted and exits, as it
also does when the gateway dies, even by SIGKILL. If the child dies, the delivery it was sending fails (and is
retried on the schedule like any failure), and the next run starts a new child.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import msgpack
from standardwebhooks import Webhook as Signer

from wagate.domain.webhooks import Headers
from wagate.logs import LOG_LEVELS, LogFormat, configure_logging
from wagate.webhooks.client import Attempt, WebhookClient, signed_headers

log = logging.getLogger("wagate.webhooks")

PROTOCOL = 4  # the frames' layout; 3: the refused outcome; 4: msgpack arrays
MAX_FRAME = 256 * 1024 * 1024
MAX_RUN = 256
_MAX_ENDPOINTS = 10_000
_NOT_ATTEMPTED, _DELIVERED, _FAILED, _REFUSED = 0, 1, 2, 3
# While it holds runs the child says it is alive every HEARTBEAT seconds; silent for the request timeout and GRACE
# more, it is taken as stuck and replaced. (A run may take long: up to MAX_RUN requests to a slow endpoint.)
HEARTBEAT = 1.0
_GRACE = 10.0


def frame(*items: Any) -> bytes:
    return msgpack.packb(items, use_bin_type=True)  # type: ignore[no-any-return]


class FrameReader:
    """Splits a byte stream into msgpack arrays and hands each to ``on_frame``."""

    def __init__(self, on_frame: Callable[[list[Any]], None]) -> None:
        self._unpacker = msgpack.Unpacker(max_buffer_size=MAX_FRAME, raw=False)
        self._on_frame = on_frame

    def feed(self, data: bytes) -> None:
        self._unpacker.feed(data)
        for message in self._unpacker:
            if not isinstance(message, list) or not message:
                raise ValueError("a frame that is not an array")
            self._on_frame(message)


class TurnWriter:
    """Frames written during one turn of the loop, sent to ``target()`` in one write once the turn is over."""

    def __init__(self, target: Callable[[], asyncio.WriteTransport | None]) -> None:
        self._target = target
        self._out: list[bytes] = []
        self._scheduled = False

    def send(self, data: bytes) -> None:
        self._out.append(data)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        out, self._out = self._out, []
        transport = self._target()
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))

    def clear(self) -> None:
        self._out.clear()


def encode_answer(token: int, attempts: Sequence[Attempt | None]) -> bytes:
    outcomes: list[tuple[int, int | None, float | None, str]] = []
    for attempt in attempts:
        if attempt is None:
            outcomes.append((_NOT_ATTEMPTED, None, None, ""))
            continue
        outcome = _DELIVERED if attempt.ok else _REFUSED if attempt.refused else _FAILED
        outcomes.append((outcome, attempt.status, attempt.retry_after, attempt.error[:4000]))
    return frame("A", token, outcomes)


def decode_answer(message: list[Any]) -> tuple[int, list[Attempt | None]]:
    _, token, outcomes = message
    attempts: list[Attempt | None] = []
    for outcome, status, retry_after, error in outcomes:
        if outcome == _NOT_ATTEMPTED:
            attempts.append(None)
        else:
            attempts.append(
                Attempt(outcome == _DELIVERED, status or None, str(error), retry_after, outcome == _REFUSED)
            )
    return int(token), attempts


# the gateway's side --------------------------------------------------------------------------------------------


class _ChildPipes(asyncio.SubprocessProtocol):
    def __init__(self, sender: WebhookProcess) -> None:
        self._sender = sender
        self._reader = FrameReader(sender._answered)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self._sender.heard = time.monotonic()
            try:
                self._reader.feed(data)
            except (ValueError, TypeError, IndexError, msgpack.UnpackException):
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
        self._endpoints: dict[tuple[str, tuple[str, ...], Headers], int] = {}
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
    ) -> list[Attempt | None]:
        """Send ``deliveries`` ((event id, body), oldest first, at most :data:`MAX_RUN`) to ``url``, signed with each
        of ``secrets`` and with the endpoint's own ``headers``, one after the other, stopping at the first that
        fails (one the SSRF guard refuses does not stop it): an attempt for each one tried, None for the rest."""
        if self._transport is None:
            try:
                await self.start()
            except OSError as exc:
                return self._failed(len(deliveries), f"the webhook sender process cannot start: {exc}"[:300])
            if self._transport is None:
                return self._failed(len(deliveries), "the webhook sender is stopped")
        key = (url, secrets, headers)
        index = self._endpoints.get(key)
        if index is None:
            if len(self._endpoints) >= _MAX_ENDPOINTS:
                self._endpoints.clear()  # indexes are reused from 0; the child replaces its entries as they come
            index = self._endpoints[key] = len(self._endpoints)
            self._writer.send(frame("E", index, url, secrets, headers))
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


# the child's side ----------------------------------------------------------------------------------------------


class _Child:
    def __init__(self, client: WebhookClient, output: asyncio.WriteTransport) -> None:
        self.client = client
        self.endpoints: dict[int, tuple[str, list[Signer], Headers]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.writer = TurnWriter(lambda: output)

    def on_frame(self, message: list[Any]) -> None:
        kind = message[0]
        if kind == "E":
            _, index, url, secrets, headers = message
            signers = [Signer(str(secret)) for secret in secrets]
            own = tuple((str(name), str(value)) for name, value in headers)
            self.endpoints[int(index)] = (str(url), signers, own)
        elif kind == "R":
            _, token, index, now, runs = message
            deliveries = [(str(event_id), bytes(body)) for event_id, body in runs]
            # The endpoint as it is now: a later E frame may give its index to another endpoint meanwhile.
            endpoint = self.endpoints.get(int(index))
            task = asyncio.ensure_future(self._run(int(token), endpoint, float(now), deliveries))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(
        self,
        token: int,
        endpoint: tuple[str, list[Signer], Headers] | None,
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
                url, signers, own = endpoint
                headers = dict(own)
                headers.update(signed_headers(signers, event_id, at, body.decode()))
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
        except (ValueError, IndexError, TypeError, KeyError, msgpack.UnpackException):  # UnicodeDecodeError too
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
        if child.tasks:
            await asyncio.wait(set(child.tasks), timeout=args.timeout + 1)
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


if __name__ == "__main__":
    main()

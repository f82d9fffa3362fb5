"""The webhook sender process, really started, against a real receiver on loopback: runs sent in order and stopped at
their first failure, a killed child replaced, a child that follows its gateway out, the SSRF guard in the child."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.receiver import Receiver
from wagate.logs import LogFormat
from wagate.webhooks.client import Attempt
from wagate.webhooks.process import PROTOCOL, WebhookProcess, frame

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    running.secrets["/hook"] = SECRET
    yield running
    await running.stop()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookProcess]:
    made = WebhookProcess(timeout=2.0, allow_private=True, concurrency=10)
    yield made
    await made.close()


def deliveries(count: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"evt_{n:04d}", b'{"n": %d}' % n) for n in range(start, start + count)]


async def running_child(sender: WebhookProcess, receiver: Receiver) -> int:
    """Deliver one so that a child runs: its pid."""
    (attempt,) = await sender.run(receiver.url(), (SECRET,), deliveries(1, start=900), time.time())
    assert attempt is not None
    assert attempt.ok
    assert sender.pid is not None
    return sender.pid


async def assert_failed_then_replaced(
    attempts: list[Attempt | None], lost: int, sender: WebhookProcess, receiver: Receiver
) -> None:
    """The run the lost child held failed at its head (the rest not attempted); the next run starts another child."""
    failed, *rest = attempts
    assert failed is not None
    assert not failed.ok
    assert "exited" in failed.error
    assert rest == [None] * len(rest)
    receiver.delay = 0.0
    (again,) = await sender.run(receiver.url(), (SECRET,), deliveries(1, start=901), time.time())
    assert again is not None
    assert again.ok
    assert sender.started == 2
    assert sender.pid not in (None, lost)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waits only for its parent to reap it
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_run_is_sent_in_order_signed_and_stops_at_its_first_failure(
    receiver: Receiver, sender: WebhookProcess
) -> None:
    attempts = await sender.run(receiver.url(), (SECRET,), deliveries(5), time.time())
    assert [(a.ok, a.status) if a else None for a in attempts] == [(True, 204)] * 5
    assert [r.webhook_id for r in receiver.received] == [f"evt_{n:04d}" for n in range(5)]
    assert receiver.verified == 5  # the standardwebhooks verifier, on arrival
    assert not receiver.failures

    busy = web.Response(status=503, headers={"Retry-After": "7"})
    receiver.answer = lambda r: busy if r.webhook_id == "evt_0007" else None
    attempts = await sender.run(receiver.url(), (SECRET,), deliveries(5, start=5), time.time())
    assert [(a.ok, a.status, a.retry_after) if a else None for a in attempts] == [
        (True, 204, None),
        (True, 204, None),
        (False, 503, 7.0),
        None,  # not attempted: the run stopped at its failure, so the session's order holds
        None,
    ]
    assert [r.webhook_id for r in receiver.received][5:] == ["evt_0005", "evt_0006", "evt_0007"]
    assert sender.started == 1


async def test_a_killed_child_fails_its_run_and_the_next_run_starts_another(
    receiver: Receiver, sender: WebhookProcess
) -> None:
    first = await running_child(sender, receiver)
    receiver.delay = 5.0  # the next request hangs in the receiver while the child is killed
    running = asyncio.ensure_future(sender.run(receiver.url(), (SECRET,), deliveries(3), time.time()))
    await receiver.wait_for(2)
    os.kill(first, signal.SIGKILL)
    attempts = await asyncio.wait_for(running, 5)
    assert len(attempts) == 3
    await assert_failed_then_replaced(attempts, first, sender, receiver)


async def test_the_child_exits_when_its_gateway_goes_and_ignores_sigterm(
    receiver: Receiver, sender: WebhookProcess
) -> None:
    pid = await running_child(sender, receiver)
    os.kill(pid, signal.SIGTERM)  # a terminal's or a service manager's signal to the group: the gateway stops it
    await asyncio.sleep(0.3)
    assert alive(pid)
    assert sender._stdin is not None
    sender._stdin.close()  # what a gateway killed with SIGKILL leaves: the child's input ends
    deadline = time.monotonic() + 5
    while alive(pid):
        assert time.monotonic() < deadline, "the sender outlived its gateway"
        await asyncio.sleep(0.05)


async def test_the_guard_runs_in_the_child_and_no_connection_is_made() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        guarded = WebhookProcess(timeout=2.0, allow_private=False, concurrency=10)
        try:
            for url in (f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook", f"http://2130706433:{port}/"):
                # A refused delivery does not stop its run: each is tried (and refused) on its own.
                attempts = await guarded.run(url, (SECRET,), deliveries(3), time.time())
                assert len(attempts) == 3
                for attempt in attempts:
                    assert attempt is not None
                    assert not attempt.ok
                    assert attempt.refused, attempt
                    assert attempt.error.startswith("address_refused: "), attempt
        finally:
            await guarded.close()
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected


async def test_a_run_keeps_its_endpoint_when_the_index_is_given_to_another(
    receiver: Receiver, sender: WebhookProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("wagate.webhooks.process._MAX_ENDPOINTS", 1)  # every new endpoint takes index 0 again
    other = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
    receiver.secrets.update({"/a": SECRET, "/b": other})
    receiver.delay = 0.2  # run a is still sending when b's endpoint takes its index
    first = asyncio.ensure_future(sender.run(receiver.url("/a"), (SECRET,), deliveries(3), time.time()))
    await receiver.wait_for(1)
    second = await sender.run(receiver.url("/b"), (other,), deliveries(1, start=3), time.time())
    assert all(a is not None and a.ok for a in [*await first, *second])
    by_path = {path: [r.webhook_id for r in receiver.received if r.path == path] for path in ("/a", "/b")}
    assert by_path == {"/a": ["evt_0000", "evt_0001", "evt_0002"], "/b": ["evt_0003"]}
    assert receiver.verified == 4  # each request signed with its own endpoint's secret
    assert not receiver.failures


async def test_a_frozen_child_is_replaced_and_a_slow_run_is_not(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("wagate.webhooks.process._GRACE", 0.5)  # silent for timeout + 0.5 s: taken as stuck
    sender = WebhookProcess(timeout=1.0, allow_private=True, concurrency=10)
    try:
        receiver.delay = 0.8  # each request just within the timeout: a run of 3 takes twice timeout + grace
        started = time.monotonic()
        attempts = await sender.run(receiver.url(), (SECRET,), deliveries(3), time.time())
        assert time.monotonic() - started > 2.0
        assert [a is not None and a.ok for a in attempts] == [True, True, True]  # its heartbeats kept it alive
        assert sender.started == 1

        frozen = sender.pid
        assert frozen is not None
        running = asyncio.ensure_future(sender.run(receiver.url(), (SECRET,), deliveries(1, start=3), time.time()))
        await receiver.wait_for(4)
        os.kill(frozen, signal.SIGSTOP)  # a child that neither answers nor dies
        attempts = await asyncio.wait_for(running, 10)
        assert len(attempts) == 1
        await assert_failed_then_replaced(attempts, frozen, sender, receiver)
    finally:
        await sender.close()


async def test_a_child_of_another_frame_layout_refuses_to_start() -> None:
    """A child of another version of the package (one installed over the running gateway) must not misread frames."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wagate.webhooks.process",
        "--protocol",
        str(PROTOCOL - 1),
        "--timeout",
        "1",
        "--concurrency",
        "1",
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 2
    assert b"--protocol" in err


async def test_a_run_carries_the_endpoints_headers_and_a_new_set_is_a_new_endpoint(
    sender: WebhookProcess, receiver: Receiver
) -> None:
    url = receiver.url("/hook")
    first = (("authorization", "Bearer a"),)
    assert all(a is not None and a.ok for a in await sender.run(url, (SECRET,), deliveries(2), time.time(), first))
    second = (("authorization", "Bearer b"), ("x-n", "2"))
    assert all(a is not None and a.ok for a in await sender.run(url, (SECRET,), deliveries(1, 2), time.time(), second))
    got = await receiver.wait_for(3)
    assert receiver.failures == []
    assert [(r.headers["authorization"], r.headers.get("x-n")) for r in got] == [
        ("Bearer a", None),
        ("Bearer a", None),
        ("Bearer b", "2"),
    ]


async def test_the_child_logs_in_the_gateways_format(receiver: Receiver) -> None:
    """The child writes to the gateway's stderr: with JSON logs, its lines are JSON too (a log pipeline parses both)."""
    sender = WebhookProcess(
        timeout=2.0, allow_private=True, concurrency=10, log_level="INFO", log_format=LogFormat.JSON
    )
    try:
        assert all(
            a is not None and a.ok for a in await sender.run(receiver.url(), (SECRET,), deliveries(1), time.time())
        )
        assert sender.pid is not None
        args = (await asyncio.to_thread(Path(f"/proc/{sender.pid}/cmdline").read_bytes)).split(b"\0")
        assert args[args.index(b"--log-format") + 1] == b"json"
        assert args[args.index(b"--log-level") + 1] == b"INFO"
    finally:
        await sender.close()
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "wagate.webhooks.process", "--protocol", str(PROTOCOL), "--timeout", "1"),
        *("--concurrency", "1", "--log-format", "json"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(child.communicate(frame("E", 1, "short")), 30)  # a broken frame
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert lines, err
    assert lines[0]["level"] == "ERROR"
    assert lines[0]["logger"] == "wagate.webhooks"
    assert "broken frame" in lines[0]["msg"]
    assert "Traceback" in lines[0]["exc"]

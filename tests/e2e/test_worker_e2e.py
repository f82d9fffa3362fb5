"""``wagate worker`` beside an API-only ``wagate serve`` on one PostgreSQL: the worker runs the sessions and the
webhook deliveries and serves no tenant API; everything a tenant does goes through the API process, which runs no
session, and still reaches the worker (a QR code is forwarded to it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from websockets.sync.client import connect

from tests.support import loopback
from tests.support.procs import Served, free_port
from tests.support.receiver import Receiver
from tests.support.services import pg_url
from tests.support.stack import Stack, sessions_working, wait_for

pytestmark = pytest.mark.e2e

PHONE = "+15550701"


def start_worker(stack: Stack, port: int) -> Served:
    """``wagate worker`` as a process of its own, its data directory its own, on the stack's database."""
    data = stack.tmp / "worker"
    data.mkdir()
    env = {
        **stack.env,
        "WAGATE_DATA_DIR": str(data),
        "WAGATE_WORKER_ID": "w",
        "WAGATE_WORKER_URL": f"http://127.0.0.1:{port}",
        "WAGATE_SUPERVISE": "true",
    }
    log_path = stack.tmp / f"worker-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wagate", "worker", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    served = Served(proc, f"http://127.0.0.1:{port}", log_path)
    stack.started.append(served)
    served.wait_healthy()
    return served


def test_a_worker_runs_what_an_api_only_process_records(
    stack_factory: Callable[..., Stack], pg_schema: str, receiver: Receiver
) -> None:
    stack = stack_factory(
        WAGATE_DATABASE_URL=pg_url(),
        WAGATE_DATABASE_SCHEMA=pg_schema,
        WAGATE_WORKER_ID="api",
        WAGATE_SUPERVISE="false",
        WAGATE_WEBHOOK_ALLOW_PRIVATE="1",
        WAGATE_WEBHOOK_POLL_INTERVAL="0.2",
    )
    api = stack.start()
    worker = start_worker(stack, free_port())
    key = stack.tenant()

    # The worker answers health, readiness and metrics, and no tenant API.
    assert loopback.get(worker.base_url + "/health", timeout=5).json()["status"] == "ok"
    assert loopback.get(worker.base_url + "/ready", timeout=5).json()["status"] == "ready"
    assert loopback.get(worker.base_url + "/api/sessions", headers=key, timeout=5).status_code == 404
    assert loopback.post(worker.base_url + "/api/sendText", json={}, headers=key, timeout=5).status_code == 404
    assert loopback.get(worker.base_url + "/openapi.json", timeout=5).status_code == 404

    with stack.http as http:
        hook = http.post("/api/webhooks", json={"url": receiver.url(), "events": ["message"]})
        assert hook.status_code == 201, hook.text
        receiver.secrets["/hook"] = hook.json()["secret"]
    stack.link("main", PHONE)  # its QR code comes from the worker, through the API process
    assert sessions_working(worker) == 1
    assert sessions_working(api) == 0  # the API process runs nothing

    # Received messages: committed by the worker, listed by the API process, delivered by the worker's webhooks,
    # and heard by a WebSocket client of the API process.
    ws_url = api.base_url.replace("http://", "ws://") + "/ws?events=message"
    with connect(ws_url, additional_headers=key) as ws:
        stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "hello", "count": 3})
        heard = [json.loads(ws.recv(timeout=15))["payload"]["body"] for _ in range(3)]
    assert heard == ["hello #1", "hello #2", "hello #3"]
    wait_for(lambda: len(receiver.received) >= 3, 15, "three webhook deliveries")
    assert receiver.failures == []
    assert receiver.verified == 3
    with stack.http as http:
        events = http.get("/api/events", params={"session": "main", "types": "message"}).json()
        assert [e["payload"]["body"] for e in events] == ["hello #1", "hello #2", "hello #3"]

        # A message queued through the API process is sent by the worker.
        sent = http.post("/api/sendText", json={"session": "main", "chatId": "+15550100", "text": "hi there"})
        assert sent.status_code == 201, sent.text

        def on_the_phone() -> bool:
            got = loopback.get(f"{stack.sim.base_url}/devices/{PHONE}/sent", timeout=5).json()
            return any(m.get("text") == "hi there" for m in got)

        wait_for(on_the_phone, 15, "the message at the simulator")
        message_id = sent.json()["id"]
        wait_for(
            lambda: http.get(f"/api/main/messages/{message_id}").json()["ackName"] in ("SERVER", "DEVICE", "READ"),
            15,
            "the message marked sent",
        )

    # The worker stops cleanly on SIGTERM, and the API process then shows the session as no longer WORKING.
    started = time.monotonic()
    assert worker.terminate() == 0
    assert time.monotonic() - started < 10
    assert stack.session("main")["status"] != "WORKING"

"""Several gateway processes against one PostgreSQL: the sessions spread over the live workers, a WebSocket client
of any worker hears the events of every worker, requests that only a session's worker can answer are forwarded to
it, and a worker killed with SIGKILL leaves its sessions to the others, which reconnect them without a new scan."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.support import loopback
from tests.support.procs import Served, free_port, serve
from tests.support.receiver import Receiver
from tests.support.services import pg_url
from tests.support.stack import ADMIN, Stack, first_worker, sessions_working, start_worker, wait_for

pytestmark = pytest.mark.e2e

PHONES = [f"+1555020{n}" for n in range(5)]


def test_sessions_spread_over_workers_and_survive_one_killed(
    stack_factory: Callable[..., Stack], pg_schema: str
) -> None:
    stack = stack_factory(
        WAGATE_DATABASE_URL=pg_url(),
        WAGATE_DATABASE_SCHEMA=pg_schema,
        WAGATE_WORKER_ID="a",
        WAGATE_RECONCILE_INTERVAL="0.5",
        WAGATE_LEASE_TTL="4",
        WAGATE_MAX_SESSIONS_PER_TENANT="10",
    )
    stack.env["WAGATE_WORKER_URL"] = f"http://127.0.0.1:{stack.port}"
    first = stack.start()
    key = stack.tenant()
    for n, phone in enumerate(PHONES):
        stack.link(f"s{n}", phone)
    assert sessions_working(first) == 5

    (stack.tmp / "b").mkdir()
    env = {**stack.env, "WAGATE_WORKER_ID": "b", "WAGATE_DATA_DIR": str(stack.tmp / "b")}
    del env["WAGATE_WORKER_URL"]  # the second gives no address: nothing can be forwarded to it
    second = serve(stack.tmp / "b", env, port=free_port())
    stack.started.append(second)
    second.wait_healthy()
    wait_for(lambda: (sessions_working(first), sessions_working(second)) == (3, 2), 30, "three and two sessions")
    for n in range(5):
        stack.wait_status(f"s{n}", "WORKING")  # the API of either worker shows every session

    def workers() -> dict[str, Any] | None:
        """The first worker's view, as of its last reconcile, once it shows the spread."""
        status = loopback.get(first.base_url + "/api/server/status", headers={"X-Api-Key": ADMIN}, timeout=10).json()
        seen: dict[str, Any] = status["workers"]
        return seen if sorted(seen["live"].values()) == [2, 3] else None

    seen = wait_for(workers, 10, "the spread in the server status")
    assert seen["this"].startswith("a#")
    assert seen["share"] == 3

    # A WebSocket client on the second worker hears the sessions of both, each session's events in order; a
    # client of another tenant hears none of them.
    other = loopback.post(second.base_url + "/api/tenants", json={"name": "other"}, headers={"X-Api-Key": ADMIN})
    assert other.status_code == 201, other.text
    ws_base = second.base_url.replace("http://", "ws://") + "/ws?events=message"
    with (
        connect(ws_base, additional_headers=key) as ws,
        connect(ws_base, additional_headers={"X-Api-Key": other.json()["api_key"]}) as stranger,
    ):
        for phone in PHONES:
            stack.sim_post(f"/devices/{phone}/messages", {"from": "+15550002", "text": phone, "count": 20})
        heard: dict[str, list[str]] = {}
        while sum(len(texts) for texts in heard.values()) < 100:
            event = json.loads(ws.recv(timeout=15))
            heard.setdefault(event["session"], []).append(event["payload"]["body"])
        assert heard == {f"s{n}": [f"{phone} #{m}" for m in range(1, 21)] for n, phone in enumerate(PHONES)}
        with pytest.raises(TimeoutError):
            stranger.recv(timeout=0.5)

    with loopback.client(base_url=second.base_url, timeout=30, headers=key) as on_second, stack.http as on_first:
        # A session created through the second runs there; the first cannot forward to it, and says so.
        assert on_second.post("/api/sessions", json={"name": "late"}).status_code == 201
        stack.wait_status("late", "SCAN_QR_CODE")
        refused = on_first.get("/api/late/auth/qr", params={"format": "raw"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "runs_elsewhere"
        assert "worker b#" in refused.json()["error"]["message"]
        qr = on_second.get("/api/late/auth/qr", params={"format": "raw"})
        assert qr.status_code == 200, qr.text
        stack.sim_post("/phone/scan", {"phone": "+15550299", "qr": qr.json()["value"]})
        stack.wait_status("late", "WORKING")

        # One created through the first runs there: its QR code and a pairing code come through the second.
        assert on_first.post("/api/sessions", json={"name": "coded"}).status_code == 201
        stack.wait_status("coded", "SCAN_QR_CODE")
        image = on_second.get("/api/coded/auth/qr")
        assert image.status_code == 200, image.text
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")
        code = on_second.post("/api/coded/auth/request-code", json={"phoneNumber": "+15550298"})
        assert code.status_code == 201, code.text
        stack.sim_post("/phone/pair", {"phone": "+15550298", "code": code.json()["code"]})
        stack.wait_status("coded", "WORKING")
        unknown = on_second.post("/api/nosuch/auth/request-code", json={"phoneNumber": "+15550298"})
        assert unknown.status_code == 404
    assert (sessions_working(first), sessions_working(second)) == (4, 3)

    stack.sim_post(f"/devices/{PHONES[0]}/messages", {"from": "+15550002", "text": "before", "count": 5})
    wait_for(lambda: stack.device(PHONES[0])["messages_acked"] == 25, 15, "the messages before the kill")
    second.kill()  # SIGKILL: its leases stay until they expire
    wait_for(lambda: sessions_working(first) == 7, 30, "the first worker to run all seven")
    stack.sim_post(f"/devices/{PHONES[0]}/messages", {"from": "+15550002", "text": "after", "count": 5})
    wait_for(lambda: stack.device(PHONES[0])["messages_acked"] == 30, 15, "every message acknowledged")
    for phone in [*PHONES, "+15550299", "+15550298"]:
        assert stack.device(phone)["decrypt_failures"] == 0  # no session lost its keys on the way
        assert stack.device(phone)["paired"]
    with stack.http as http:
        answer = http.get("/api/events", params={"session": "s0", "types": "message", "limit": 50})
    texts = [e["payload"]["body"] for e in answer.json()]
    expected = [f"{PHONES[0]} #{n}" for n in range(1, 21)]
    expected += [f"{word} #{n}" for word in ("before", "after") for n in range(1, 6)]
    assert texts == expected  # once each, in order


def start_second(stack: Stack) -> Served:
    """A second worker ("b")."""
    return start_worker(stack, "b")


def test_a_worker_just_started_hears_the_others_events_at_once(
    stack_factory: Callable[..., Stack], pg_schema: str
) -> None:
    """The first worker reconciles (and learns of the second) only every minute here; the second's hello makes it
    announce its events from the moment the second listens, so the second's WebSocket clients hear them live."""
    stack = first_worker(stack_factory, pg_schema, WAGATE_RECONCILE_INTERVAL="60")
    key = stack.tenant()
    stack.link("s0", PHONES[0])
    second = start_second(stack)
    ws_url = second.base_url.replace("http://", "ws://") + "/ws?events=message"
    with connect(ws_url, additional_headers=key) as ws:
        stack.sim_post(f"/devices/{PHONES[0]}/messages", {"from": "+15550002", "text": "live", "count": 5})
        heard = [json.loads(ws.recv(timeout=5))["payload"]["body"] for _ in range(5)]  # long before a reconcile
    assert heard == [f"live #{n}" for n in range(1, 6)]
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(loopback.get(second.base_url + "/metrics", timeout=5).text)
        for sample in family.samples
    }
    assert samples["wagate_peer_listening"] == 1
    assert samples["wagate_peer_events_total"] >= 5  # the five, and any status events of the first worker's


def test_a_webhook_changed_through_one_worker_is_used_at_once_by_the_other(
    stack_factory: Callable[..., Stack], pg_schema: str, receiver: Receiver
) -> None:
    """The session runs on the first worker, whose dispatcher keeps its copy of an endpoint for 30 s; a PATCH
    answered by the second makes the first read it again before its next delivery."""
    stack = first_worker(stack_factory, pg_schema, WAGATE_WEBHOOK_ALLOW_PRIVATE="1")
    key = stack.tenant()
    assert stack.gateway is not None
    made = loopback.post(stack.gateway.base_url + "/api/webhooks", json={"url": receiver.url("/old")}, headers=key)
    assert made.status_code == 201, made.text
    receiver.secrets["/old"] = receiver.secrets["/new"] = made.json()["secret"]
    stack.link("s0", PHONES[0])
    wait_for(lambda: any(r.path == "/old" for r in receiver.received), 10, "a delivery to the first URL")
    second = start_second(stack)
    path = f"/api/webhooks/{made.json()['id']}"
    changed = loopback.patch(second.base_url + path, json={"url": receiver.url("/new")}, headers=key)
    assert changed.status_code == 200, changed.text
    before = len(receiver.received)
    stack.sim_post(f"/devices/{PHONES[0]}/messages", {"from": "+15550002", "text": "moved", "count": 3})
    wait_for(lambda: sum("moved" in r.body.decode() for r in receiver.received) == 3, 10, "the three messages")
    assert receiver.failures == []
    moved = [r for r in receiver.received[before:] if "moved" in r.body.decode()]
    assert [r.path for r in moved] == ["/new"] * 3  # not the first worker's 30-second-old copy

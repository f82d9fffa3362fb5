"""Events end to end with real processes: WebSocket streams and signed webhooks for two tenants, the WebSocket's
refusals and its slow-client cut-off, and a SIGKILL while events are being produced."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from websockets.sync.client import connect

from tests.support import loopback
from tests.support.probes import HOOKS, add_webhook, close_code, read_until, scrape, ws_url
from tests.support.receiver import Receiver
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e


def texts(events: list[dict[str, Any]], tenant: str | None = None) -> list[str]:
    return [e["payload"]["body"] for e in events if e["event"] == "message"]


def test_two_tenants_see_only_their_own_events_in_order(
    stack_factory: Callable[..., Stack], receiver: Receiver
) -> None:
    stack = stack_factory(**HOOKS)
    stack.start()
    keys, hooks = {}, {}
    for tenant, phone in (("a", "+15550001"), ("b", "+15550002")):
        keys[tenant] = stack.tenant(tenant)
        hooks[tenant] = add_webhook(stack, keys[tenant], receiver.url(f"/{tenant}"))
        receiver.secrets[f"/{tenant}"] = hooks[tenant]["secret"]
        stack.link("main", phone)
    tenant_ids = {t: stack_tenant_id(stack, keys[t]) for t in keys}
    assert stack.gateway is not None
    ticket = loopback.post(stack.gateway.base_url + "/api/events/ticket", headers=keys["b"]).json()["ticket"]
    with (
        connect(ws_url(stack, "events=message"), additional_headers=keys["a"]) as ws_a,
        connect(ws_url(stack, f"ticket={ticket}")) as ws_b,
    ):
        for tenant, phone in (("a", "+15550001"), ("b", "+15550002")):
            stack.sim_post(f"/devices/{phone}/messages", {"from": "+15550100", "text": tenant, "count": 300})
        seen_a = read_until(ws_a, lambda got: len(texts(got)) >= 300, 20)
        seen_b = read_until(ws_b, lambda got: len(texts(got)) >= 300, 20)
    assert {e["tenant"] for e in seen_a} == {tenant_ids["a"]}
    assert {e["tenant"] for e in seen_b} == {tenant_ids["b"]}
    assert texts(seen_a) == [f"a #{n}" for n in range(1, 301)]  # every one, in order
    assert texts(seen_b) == [f"b #{n}" for n in range(1, 301)]
    ids = [e["id"] for e in seen_a]
    assert ids == sorted(ids)
    # Webhooks: verified with each endpoint's own secret, one tenant's events only, in order per session.
    wait_for(lambda: sum(1 for r in receiver.received if r.path == "/b" and "b #300" in r.body.decode()), 20, "b")
    wait_for(lambda: sum(1 for r in receiver.received if r.path == "/a" and "a #300" in r.body.decode()), 20, "a")
    assert receiver.failures == []
    assert receiver.verified == len(receiver.received)
    for tenant in ("a", "b"):
        mine = [r.envelope for r in receiver.received if r.path == f"/{tenant}"]
        assert {e["tenant"] for e in mine} == {tenant_ids[tenant]}
        assert texts(mine) == [f"{tenant} #{n}" for n in range(1, 301)]
        statuses = [e["payload"]["status"] for e in mine if e["event"] == "session.status"]
        assert statuses[-1] == "WORKING"
        assert "SCAN_QR_CODE" in statuses
        assert any(e["event"] == "session.paired" for e in mine)
        assert not any("value" in e["payload"] or "qr" in e["payload"] for e in mine if e["event"] == "session.qr")
    counted = scrape(stack)
    delivered = counted[("wagate_webhook_deliveries_total", (("outcome", "delivered"),))]
    assert delivered >= 600
    assert counted[("wagate_webhook_delivery_lag_seconds_count", ())] == delivered
    assert counted[("wagate_webhook_delivery_lag_seconds_bucket", (("le", "+Inf"),))] == delivered
    assert 0 < counted[("wagate_webhook_delivery_lag_seconds_sum", ())] < delivered * 20  # none waited for a retry


def test_a_waha_handler_reads_the_same_envelope_from_a_webhook_the_websocket_and_the_history(
    stack_factory: Callable[..., Stack], receiver: Receiver
) -> None:
    stack = stack_factory(**HOOKS)
    stack.start()
    key = stack.tenant("a")
    hook = add_webhook(stack, key, receiver.url("/any"), events=["message.any"], hmac={"key": "waha-key"})
    receiver.secrets["/any"] = hook["secret"]
    stack.link("main", "+15550001")
    assert stack.gateway is not None
    before = loopback.get(stack.gateway.base_url + "/api/events", headers=key).json()
    with connect(ws_url(stack, "events=message.any"), additional_headers=key) as ws:
        stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": "hi", "count": 1})
        (live,) = read_until(ws, lambda got: len(got) >= 1, 20)
    wait_for(lambda: any(r.path == "/any" for r in receiver.received), 20, "the webhook")
    (delivered,) = [r for r in receiver.received if r.path == "/any"]
    # What a WAHA handler reads, and how it checks the request: its own HMAC-SHA512 of the raw body.
    expected = hmac.new(b"waha-key", delivered.body, hashlib.sha512).hexdigest()
    assert delivered.headers["x-webhook-hmac"] == expected
    assert delivered.headers["x-webhook-hmac-algorithm"] == "sha512"
    assert receiver.failures == []  # and the Standard Webhooks signature verified
    envelope = delivered.envelope
    assert (envelope["event"], envelope["session"], envelope["engine"]) == ("message.any", "main", "GOWS")
    assert (envelope["payload"]["body"], envelope["payload"]["from"]) == ("hi", "15550100@c.us")
    assert envelope["me"]["id"] == "15550001@c.us"
    assert isinstance(envelope["timestamp"], int)
    assert envelope["timestamp"] > 1_000_000_000_000  # ms
    assert live == envelope  # the WebSocket gives the same
    replay_query = f"events=message.any&after={before[-1]['id']}"
    with connect(ws_url(stack, replay_query), additional_headers=key) as ws:
        (replayed,) = read_until(ws, lambda got: len(got) >= 1, 20)
    assert replayed == envelope  # and so does a replay
    history = loopback.get(stack.gateway.base_url + "/api/events", params={"types": "message.any"}, headers=key).json()
    assert history == [envelope]
    plain = loopback.get(stack.gateway.base_url + "/api/events", params={"types": "message"}, headers=key).json()
    assert [e["event"] for e in plain] == ["message"]  # stored once, named for who asks
    assert {k: v for k, v in plain[0].items() if k != "event"} == {k: v for k, v in envelope.items() if k != "event"}


def stack_tenant_id(stack: Stack, key: dict[str, str]) -> str:
    assert stack.gateway is not None
    events = loopback.get(stack.gateway.base_url + "/api/events", params={"limit": 1}, headers=key).json()
    tenant: str = events[0]["tenant"]
    return tenant


def test_websocket_refusals_say_why(stack: Stack) -> None:
    assert stack.gateway is not None
    base = stack.gateway.base_url
    cases = [
        ("", {}, 4401),
        ("", {"X-Api-Key": "wag_not-a-key"}, 4401),
        ("ticket=wst_forged", {}, 4401),
        ("", {"X-Api-Key": "stack-admin-key-0123456789abcdef"}, 4403),
        ("events=message.bogus", stack.key, 4400),
        ("session=bad%20name", stack.key, 4400),
        ("after=123", stack.key, 4400),
    ]
    for query, headers, code in cases:
        with connect(ws_url(stack, query), additional_headers=headers) as ws:
            assert close_code(ws) == code, (query, headers)
    ticket = loopback.post(base + "/api/events/ticket", headers=stack.key).json()["ticket"]
    with connect(ws_url(stack, f"ticket={ticket}")) as ws, pytest.raises(TimeoutError):
        ws.recv(timeout=0.3)  # accepted: nothing to say yet
    with connect(ws_url(stack, f"ticket={ticket}")) as ws:  # a ticket works once
        assert close_code(ws) == 4401


def test_a_slow_client_is_cut_off_and_can_resume(stack_factory: Callable[..., Stack]) -> None:
    # Far below the 2,000 events the slow client never reads, and enough for a client that reads as fast as it can
    # to stay within one commit's events of the gateway (with 20 it could not once commits came faster).
    stack = stack_factory(WAGATE_WS_MAX_PENDING="200")
    stack.start()
    stack.tenant()
    stack.link("main", "+15550001")
    with (
        connect(ws_url(stack, "events=message"), additional_headers=stack.key, max_queue=1) as slow,
        connect(ws_url(stack, "events=message"), additional_headers=stack.key) as brisk,
    ):
        # Large messages (2,000 x 4 KiB): the slow client's socket buffers fill and the gateway's queue for it grows.
        text = "m" * 4096
        first = stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": text, "count": 2000})
        assert first["queued"] == 2000
        got = read_until(brisk, lambda got: len(got) >= 2000, 30)  # the other client is not held back
        assert texts(got) == [f"{text} #{n}" for n in range(1, 2001)]
        assert close_code(slow) == 4408
    # Reconnecting with after=<last id it saw> replays the gap, then goes live.
    last_seen = got[99]["id"]
    with connect(ws_url(stack, f"events=message&after={last_seen}"), additional_headers=stack.key) as ws:
        replay = read_until(ws, lambda got: len(got) >= 1900, 30)
        assert texts(replay) == [f"{text} #{n}" for n in range(101, 2001)]
        stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": "live", "count": 1})
        assert texts(read_until(ws, lambda got: len(got) >= 1, 20)) == ["live"]


def test_sigkill_while_producing_1000_events_loses_no_webhook(
    stack_factory: Callable[..., Stack], receiver: Receiver
) -> None:
    stack = stack_factory(**HOOKS)
    stack.start()
    stack.tenant()
    stack.link("main", "+15550001")
    hook = add_webhook(stack, stack.key, receiver.url("/hook"), events=["message"])
    receiver.secrets["/hook"] = hook["secret"]
    first_tries: set[str] = set()

    def refuse_some_first_attempts(received: Any) -> web.Response | None:
        # Two messages fail once (each holds its session's later events back for the 5 s of its first retry):
        # the retry must carry the same webhook-id and body.
        if received.envelope["payload"]["body"] in ("m #300", "m #700") and received.webhook_id not in first_tries:
            first_tries.add(received.webhook_id)
            return web.Response(status=500)
        return None

    receiver.answer = refuse_some_first_attempts
    stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": "m", "count": 1000})
    wait_for(lambda: len(receiver.received) >= 150, 20, "some deliveries")
    assert stack.gateway is not None
    stack.gateway.proc.kill()  # SIGKILL while events are produced and delivered
    stack.gateway.proc.wait()
    at_kill = len(receiver.received)
    assert at_kill < 1000  # killed mid-stream
    stack.start()
    stack.wait_status("main", "WORKING", timeout=15)
    committed = wait_for(lambda: all_committed(stack, 1000), 40, "1,000 messages committed as events")
    wanted = {e["id"] for e in committed}

    def delivered() -> bool:
        return wanted <= {r.webhook_id for r in receiver.received}

    try:
        wait_for(delivered, 60, "every committed event delivered", interval=0.2)
    except AssertionError:
        missing = wanted - {r.webhook_id for r in receiver.received}
        with stack.http as http:
            rows = http.get(f"/api/webhooks/{hook['id']}/deliveries", params={"limit": 1000}).json()
        stuck = [d for d in rows if d["event_id"] in missing][:5]
        assert stack.gateway is not None
        raise AssertionError(f"{len(missing)} never delivered, e.g. {stuck}\n{stack.gateway.log()[-3000:]}") from None
    assert receiver.failures == []
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for r in receiver.received:
        bodies[r.webhook_id].add(r.body)
    assert all(len(b) == 1 for b in bodies.values())  # same webhook-id -> the same body, attempt after attempt
    retried = [i for i in wanted if sum(1 for r in receiver.received if r.webhook_id == i) > 1]
    assert retried, "some deliveries were retried"
    assert {e["payload"]["body"] for e in committed} == {f"m #{n}" for n in range(1, 1001)}
    assert at_kill < len(receiver.received)


def all_committed(stack: Stack, count: int) -> list[dict[str, Any]] | None:
    """Every message event in the history, once all ``count`` distinct messages are there."""
    events: list[dict[str, Any]] = []
    after = None
    with stack.http as http:
        while True:
            params: dict[str, Any] = {"types": "message", "limit": 1000}
            if after:
                params["after"] = after
            page = http.get("/api/events", params=params).json()
            events.extend(page)
            if len(page) < 1000:
                break
            after = page[-1]["id"]
    return events if len({e["payload"]["id"] for e in events}) >= count else None


def test_trickled_messages_arrive_one_by_one_in_order(stack: Stack) -> None:
    stack.link("main", "+15550001")
    scheduled = stack.sim_post(
        "/devices/+15550001/messages", {"from": "+15550100", "text": "t", "count": 20, "over": 1}
    )
    assert (scheduled["queued"], scheduled["scheduled"]) == (0, 20)
    assert stack.device("+15550001")["messages_queued"] < 20  # spread out, not all at once
    with stack.http as http:

        def arrived() -> list[str]:
            events = http.get("/api/events", params={"types": "message"}).json()
            found = texts(events)
            return found if len(found) == 20 else []

        assert wait_for(arrived, 10, "the trickled messages") == [f"t #{n}" for n in range(1, 21)]


def test_an_endpoint_changed_and_its_secret_rotated_through_the_api(
    stack_factory: Callable[..., Stack], receiver: Receiver
) -> None:
    """The gateway's process answers a PATCH and a rotation; its dispatcher (and sender child) use them from the
    next delivery: the new URL, the new headers, both signatures."""
    stack = stack_factory(**HOOKS)
    stack.start()
    key = stack.tenant("a")
    hook = add_webhook(stack, key, receiver.url("/one"), events=["message"], headers={"X-Token": "t-1"})
    receiver.secrets["/one"] = hook["secret"]
    stack.link("main", "+15550001")
    stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": "m", "count": 3})
    wait_for(lambda: len(receiver.received) >= 3, 20, "the first three")
    assert stack.gateway is not None
    base = stack.gateway.base_url + f"/api/webhooks/{hook['id']}"
    changed = loopback.patch(base, json={"url": receiver.url("/two"), "headers": {"X-Token": "t-2"}}, headers=key)
    assert changed.status_code == 200, changed.text
    rotated = loopback.post(base + "/rotate-secret", json={"previous_valid_for": 600}, headers=key)
    assert rotated.status_code == 200, rotated.text
    receiver.secrets["/two"] = rotated.json()["secret"]
    stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": "n", "count": 3})
    wait_for(lambda: len(receiver.received) >= 6, 20, "the next three")
    assert receiver.failures == []
    first, later = receiver.received[:3], receiver.received[3:6]
    assert [(r.path, r.headers["x-token"]) for r in first] == [("/one", "t-1")] * 3
    assert [(r.path, r.headers["x-token"]) for r in later] == [("/two", "t-2")] * 3
    assert texts([r.envelope for r in first + later]) == ["m #1", "m #2", "m #3", "n #1", "n #2", "n #3"]
    for got in later:  # signed with the new secret (checked on arrival) and with the old one
        assert got.verify(hook["secret"])["id"] == got.webhook_id

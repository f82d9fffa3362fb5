"""Crashes and faults with real processes: SIGKILL mid-stream, drops, refusals, logout, conflict."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable

import pytest
from websockets.sync.client import connect

from tests.support import loopback
from tests.support.probes import stored_records
from tests.support.stack import Stack, wait_for
from wagate.domain.sessions import Desired

pytestmark = pytest.mark.e2e

PHONE = "+15550001"


def test_sigkill_mid_stream_loses_nothing(stack: Stack) -> None:
    stack.link("main", PHONE)
    sent = stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "before", "count": 500})
    assert sent["queued"] == 500
    wait_for(lambda: stack.device(PHONE)["messages_acked"] >= 100, 10, "some messages acknowledged")
    assert stack.gateway is not None
    stack.gateway.proc.kill()  # SIGKILL, mid-stream
    stack.gateway.proc.wait()
    at_kill = stack.device(PHONE)
    assert at_kill["messages_acked"] < 500 or at_kill["pending"] == 0
    # Messages keep arriving while the gateway is down.
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550101", "text": "while down", "count": 250})
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "while down", "count": 250})

    stack.start()
    stack.wait_status("main", "WORKING", timeout=10)
    done = wait_for(
        lambda: (d := stack.device(PHONE))["messages_acked"] == 1000 and d["pending"] == 0 and d, 20, "all acknowledged"
    )
    assert done["decrypt_failures"] == 0
    assert done["messages_delivered"] == done["messages_acked"] == done["messages_queued"] == 1000
    statuses = [e["to_status"] for e in reversed(stack.history("main")) if e["kind"] == "status"]
    assert statuses.count("SCAN_QR_CODE") == 1  # only the first link: no new QR after the crash
    assert statuses[-1] == "WORKING"


def test_dropped_connection_reconnects_with_growing_jittered_delays(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(WAGATE_BACKOFF_BASE="0.02", WAGATE_BACKOFF_CAP="2.0")
    stack.start()
    stack.tenant()
    stack.link("main", PHONE)
    stack.sim_post(f"/devices/{PHONE}/faults", {"kind": "drop"})
    wait_for(lambda: stack.device(PHONE)["connections_total"] >= 2, 5, "a reconnection after a drop")
    stack.wait_status("main", "WORKING")

    # Refuse for a while: every attempt fails, and the gaps between attempts grow.
    stack.sim_post(f"/devices/{PHONE}/faults", {"kind": "refuse", "duration": 6})
    wait_for(lambda: stack.device(PHONE)["connections_total"] >= 3, 15, "the connection to come back")
    stack.wait_status("main", "WORKING")
    attempts = [at for at, outcome in stack.device(PHONE)["attempts"] if outcome == "refused"]
    assert len(attempts) >= 8
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # Failures 1 and 2 were the two connections cut before they had been up long enough to count as stable; the
    # wait after failure n is drawn from [0, min(cap, base * 2**(n-1))], so the gap after refusal j is bounded by
    # base * 2**(j+2).
    bounds = [min(2.0, 0.02 * 2 ** (j + 2)) for j in range(len(gaps))]
    for gap, bound in zip(gaps, bounds, strict=True):
        assert gap <= bound + 0.5  # each wait stays under its growing bound (plus connection overhead)
    assert sum(gaps[-3:]) > sum(gaps[:3])  # later waits are longer
    # Jittered: not a fixed schedule (one chance coincidence at 0.1 ms allowed; a fixed schedule repeats its cap).
    assert len({round(g, 4) for g in gaps}) >= len(gaps) - 1


def test_refusals_open_the_breaker_then_fail_and_restart_recovers(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(
        WAGATE_BREAKER_THRESHOLD="3", WAGATE_BREAKER_RESET="0.5", WAGATE_MAX_ATTEMPTS="6", WAGATE_BACKOFF_CAP="0.1"
    )
    stack.start()
    stack.tenant()
    stack.link("main", PHONE)
    stack.sim_post(f"/devices/{PHONE}/faults", {"kind": "refuse", "duration": 3600})
    failed = stack.wait_status("main", "FAILED", timeout=15)
    assert failed["reason"] == "max_retries"
    assert "refused" in failed["note"]
    reasons = [e["reason"] for e in stack.history("main") if e["kind"] == "status"]
    assert "circuit_open" in reasons
    # Six failures: the connection dropped by the refusal (it had not been up long enough to count as stable),
    # then five refused attempts.
    attempts = [at for at, outcome in stack.device(PHONE)["attempts"] if outcome == "refused"]
    assert len(attempts) == 5
    # From the third failure on, the breaker is open: each attempt waits for its reset time (half-open trial).
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.45 for gap in gaps[1:]), gaps
    threading.Event().wait(1.0)
    assert len(stack.device(PHONE)["attempts"]) == 5  # FAILED: no attempt after the fifth refusal

    stack.sim_post(f"/devices/{PHONE}/faults", {"kind": "refuse", "duration": 0})
    with stack.http as http:
        restarted = http.post("/api/sessions/main/restart")
        assert restarted.status_code == 201
    stack.wait_status("main", "WORKING")


def test_phone_logout_fails_wipes_and_shows_a_new_qr_on_start(stack: Stack) -> None:
    stack.link("main", PHONE)
    assert len(stored_records(stack.tmp, "main")) >= 1
    stack.sim_post(f"/devices/{PHONE}/faults", {"kind": "logout"})
    failed = stack.wait_status("main", "FAILED", reason="logged_out")
    assert failed["me"] is None
    assert stored_records(stack.tmp, "main") == []
    with stack.http as http:
        assert http.post("/api/sessions/main/start").status_code == 201
    stack.wait_status("main", "SCAN_QR_CODE")
    assert stack.raw_qr("main").startswith("2@")


def test_replacing_connection_gives_conflict_and_no_reconnect(stack: Stack) -> None:
    stack.link("main", PHONE)
    ((_, _, raw),) = [r for r in stored_records(stack.tmp, "main") if r[:2] == ("creds", "device")]
    creds = json.loads(raw)
    ws_url = stack.sim.base_url.replace("http", "ws") + "/ws"
    assert stack.device(PHONE)["replaced"] == 0
    with connect(ws_url) as other:  # a second client with the same device credentials
        other.send(json.dumps({"type": "hello", "device": {"id": creds["id"], "secret": creds["secret"]}}))
        assert json.loads(other.recv(5))["type"] == "connected"
        assert stack.device(PHONE)["replaced"] == 1  # the simulator counts the two clients at once
        totals = loopback.get(f"{stack.sim.base_url}/totals").json()
        assert (totals["devices"], totals["connected"], totals["replaced"]) == (1, 1, 1)
        failed = stack.wait_status("main", "FAILED", reason="conflict")
        assert failed["note"]
        attempts = stack.device(PHONE)["connection_attempts"]
        threading.Event().wait(2.0)  # give a misbehaving gateway the time to try again
        assert stack.device(PHONE)["connection_attempts"] == attempts
        assert stack.device(PHONE)["connected"]  # the other client keeps the device
    with stack.http as http:
        assert http.get("/api/sessions/main").json()["desired"] == Desired.RUNNING.value


def test_stop_start_delete_with_a_live_session(stack: Stack) -> None:
    stack.link("main", PHONE)
    with stack.http as http:
        http.post("/api/sessions/main/stop")
        stopped = stack.wait_status("main", "STOPPED")
        assert stopped["reason"] == "user"
        wait_for(lambda: not stack.device(PHONE)["connected"], 5, "the connection to close")
        http.post("/api/sessions/main/start")
        stack.wait_status("main", "WORKING")  # credentials were kept: no QR
        assert http.delete("/api/sessions/main").status_code == 200
    assert not loopback.get(f"{stack.sim.base_url}/devices/{PHONE}").json()["paired"]  # delete logs the device out

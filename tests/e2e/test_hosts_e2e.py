"""Engine hosts with real processes: a host killed (SIGKILL, SIGSEGV) during inbound traffic takes only its own
sessions, which come back on a new host with nothing lost; a gateway killed takes its hosts with it; a gateway whose
neonize sessions run in hosts never loads neonize's Go library itself."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.probes import all_events, pages, read_until, ws_url
from tests.support.procs import Served, clean_env, serve
from tests.support.stack import ADMIN, Stack, wait_for

pytestmark = pytest.mark.e2e

PEER = "15550100@s.whatsapp.net"


def engine_hosts(stack: Stack) -> list[dict[str, Any]]:
    assert stack.gateway is not None
    status = loopback.get(stack.gateway.base_url + "/api/server/status", headers={"X-Api-Key": ADMIN}, timeout=15)
    assert status.status_code == 200, status.text
    hosts: list[dict[str, Any]] = status.json()["engine_hosts"]
    return hosts


def host_pids(stack: Stack) -> dict[str, int]:
    """Each session's host, by session name."""
    return {s["name"]: h["pid"] for h in engine_hosts(stack) for s in h["sessions"]}


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def status_entries(stack: Stack, name: str) -> list[str]:
    return [e["to_status"] for e in reversed(stack.history(name)) if e["kind"] == "status"]


def stored(stack: Stack, name: str) -> list[str]:
    return [m["_data"]["id"] for m in pages(stack, f"/api/{name}/chats/{PEER}/messages", limit=200)]


def acked(stack: Stack, phone: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        device = stack.device(phone)
        return bool(device["messages_acked"] == count and device["pending"] == 0)

    return check


def restarted(events: list[dict[str, Any]], name: str) -> bool:
    """Whether ``events`` show session ``name`` STARTING and then WORKING again."""
    statuses = [e["payload"]["status"] for e in events if e["session"] == name]
    return "STARTING" in statuses and "WORKING" in statuses[statuses.index("STARTING") :]


class Traffic(threading.Thread):
    """Five messages to each phone every 20 ms until stopped; the ids sent, by session name."""

    def __init__(self, stack: Stack, phones: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.stack, self.phones = stack, phones
        self.sent: dict[str, set[str]] = {name: set() for name in phones}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for name, phone in self.phones.items():
                body = {"from": "+15550100", "text": name, "count": 5}
                self.sent[name] |= set(self.stack.sim_post(f"/devices/{phone}/messages", body)["ids"])
            self.stopping.wait(0.02)

    def stop(self) -> dict[str, set[str]]:
        self.stopping.set()
        self.join(10)
        return self.sent


class Watch(threading.Thread):
    """Samples the sessions' statuses every 20 ms until stopped: what a client polling the API would have seen."""

    def __init__(self, stack: Stack, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.stack, self.names = stack, names
        self.seen: dict[str, set[str]] = {name: set() for name in names}
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.stack.http as http:
            while not self.stopping.is_set():
                for name in self.names:
                    self.seen[name].add(http.get(f"/api/sessions/{name}").json()["status"])
                self.stopping.wait(0.02)

    def stop(self) -> dict[str, set[str]]:
        self.stopping.set()
        self.join(10)
        return self.seen


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_host_killed_during_traffic_takes_only_its_own_sessions(
    stack_factory: Callable[..., Stack], how: signal.Signals
) -> None:
    stack = stack_factory(WAGATE_HOSTED_ENGINES="sim", WAGATE_HOST_SESSIONS="2")
    stack.start()
    stack.tenant()
    phones = {f"s{i}": f"+1555000{i}" for i in range(4)}
    for name, phone in phones.items():
        stack.link(name, phone)
    before = host_pids(stack)
    assert len(set(before.values())) == 2  # two sessions per host
    victim = before["s0"]
    hit = sorted(n for n, pid in before.items() if pid == victim)
    spared = sorted(n for n, pid in before.items() if pid != victim)
    assert len(hit) == len(spared) == 2
    history_before = {name: status_entries(stack, name) for name in spared}

    traffic = Traffic(stack, phones)
    traffic.start()
    wait_for(lambda: stack.device(phones[hit[0]])["messages_acked"] >= 50, 30, "traffic on the victim's sessions")
    watch = Watch(stack, sorted(phones))
    watch.start()
    # The statuses as they commit, pushed over a WebSocket that resumes after the last one already seen: polling for
    # the transient STARTING could miss it (the first session's wait could outlast the second's STARTING).
    last_status = all_events(stack, "session.status")[-1]["id"]
    with connect(ws_url(stack, f"events=session.status&after={last_status}"), additional_headers=stack.key) as ws:
        killed_at = time.monotonic()
        os.kill(victim, how)
        sent_at_kill = {name: len(ids) for name, ids in traffic.sent.items()}
        read_until(ws, lambda got: all(restarted(got, name) for name in hit), timeout=15)
    back_after = time.monotonic() - killed_at
    time.sleep(0.3)  # traffic goes on a while on the new host
    sent = traffic.stop()
    assert all(len(sent[name]) > sent_at_kill[name] > 0 for name in phones)  # before the kill and after it
    for name, phone in phones.items():
        wait_for(acked(stack, phone, len(sent[name])), 20, f"{name}'s messages")
    seen = watch.stop()

    # Only the killed host's sessions went away, and they are back on a new host, once each, quickly.
    after = host_pids(stack)
    assert not running(victim)
    assert all(after[name] not in (victim,) for name in hit)
    assert {after[name] for name in spared} == {before[name] for name in spared}
    assert back_after < 5, back_after  # FAST: backoff bound 0.05 s, then a host's start
    for name in hit:
        assert status_entries(stack, name)[-3:] == ["WORKING", "STARTING", "WORKING"]
        assert "STARTING" in seen[name]
    for name in spared:
        assert status_entries(stack, name) == history_before[name]
        assert seen[name] == {"WORKING"}
    signal_name = how.name
    assert stack.gateway is not None
    assert f"was killed by {signal_name}" in stack.gateway.log()
    metrics = loopback.get(stack.gateway.base_url + "/metrics", timeout=15).text.splitlines()
    assert 'wagate_engine_hosts{engine="sim"} 2.0' in metrics
    assert 'wagate_engine_host_crashes_total{engine="sim"} 1.0' in metrics
    assert 'wagate_engine_host_recycles_total{engine="sim"} 0.0' in metrics

    # Every message stored exactly once, with one event each, and none failed to decrypt.
    events = Counter((e["session"], e["payload"]["_data"]["id"]) for e in all_events(stack, "message"))
    assert max(events.values()) == 1
    for name, phone in phones.items():
        ids = stored(stack, name)
        assert len(ids) == len(set(ids))
        assert set(ids) == sent[name]
        assert {i for (session, i) in events if session == name} == sent[name]
        assert stack.device(phone)["decrypt_failures"] == 0


def test_a_gateway_killed_takes_its_hosts_with_it_and_its_sessions_come_back(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(WAGATE_HOSTED_ENGINES="sim")
    stack.start()
    stack.tenant()
    stack.link("main", "+15550001")
    (pid,) = set(host_pids(stack).values())
    sent = set(stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": "x", "count": 300})["ids"])
    assert stack.gateway is not None
    stack.gateway.proc.kill()
    stack.gateway.proc.wait()
    wait_for(lambda: not running(pid), 5, "the host to exit with its gateway")

    stack.start()
    stack.wait_status("main", "WORKING", timeout=10)
    wait_for(lambda: stack.device("+15550001")["messages_acked"] == 300, 20, "every message acknowledged")
    ids = stored(stack, "main")
    assert len(ids) == len(set(ids))
    assert set(ids) == sent
    assert host_pids(stack)["main"] != pid


def test_neonize_in_hosts_keeps_its_go_library_out_of_the_gateway(tmp_path: Path) -> None:
    """By default neonize runs in hosts: offline, its session keeps retrying and says why, the Go library is mapped
    in the host only, and SIGTERM stops the gateway and its host."""
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        WAGATE_NEONIZE_PROBE="web.whatsapp.invalid:443",
    )
    gateway: Served = serve(tmp_path, env)
    try:
        gateway.wait_healthy()
        with loopback.client(base_url=gateway.base_url, timeout=10) as http:
            made = http.post("/api/tenants", json={"name": "t"}, headers={"X-Api-Key": ADMIN})
            key = {"X-Api-Key": made.json()["api_key"]}
            assert http.post("/api/sessions", json={"name": "phone"}, headers=key).status_code == 201

            def unreachable() -> bool:
                body = http.get("/api/sessions/phone", headers=key).json()
                return bool(body["status"] == "STARTING" and "network unreachable" in (body.get("note") or ""))

            wait_for(unreachable, 15, "STARTING with network unreachable")
            status = http.get("/api/server/status", headers={"X-Api-Key": ADMIN}).json()
        (host,) = status["engine_hosts"]
        assert host["engine"] == "neonize"
        assert go_library_mapped(host["pid"])
        assert not go_library_mapped(gateway.proc.pid)
        assert gateway.terminate() == 0
        assert not running(host["pid"])
    finally:
        gateway.kill()


def go_library_mapped(pid: int) -> bool:
    return "/neonize/neonize-" in Path(f"/proc/{pid}/maps").read_text()  # the wheel's Go library (.so)

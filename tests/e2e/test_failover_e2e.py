"""A worker that dies, or hangs, among several on one PostgreSQL: its sessions are taken over when its leases lapse
(not when it drops off some longer-lived list), the API never shows them WORKING while nobody runs them, and the
surviving workers' own sessions are left alone."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from tests.support import loopback
from tests.support.builders import make_settings
from tests.support.procs import Served
from tests.support.services import pg_url
from tests.support.stack import Stack, first_worker, start_worker, wait_for
from wagate.api.app import create_app
from wagate.gateway import Gateway
from wagate.runtime.node import Node

pytestmark = pytest.mark.e2e

LEASE_TTL = 3.0
# Reconciles further apart than a lease lasts: a take-over that waited for one (or for the dead worker to drop off a
# list of live workers that outlived its leases) would come seconds after the leases lapsed.
RECONCILE_INTERVAL = "4"


def link_through(stack: Stack, worker: Served, name: str, phone: str) -> None:
    """Create a session through ``worker`` (it claims it at once) and link ``phone`` to it there."""
    with loopback.client(base_url=worker.base_url, headers=stack.key, timeout=15) as http:
        created = http.post("/api/sessions", json={"name": name})
        assert created.status_code == 201, created.text
        wait_for(lambda: http.get(f"/api/sessions/{name}").json()["status"] == "SCAN_QR_CODE", 10, f"{name}'s QR")
        qr = http.get(f"/api/{name}/auth/qr", params={"format": "raw"})
        assert qr.status_code == 200, qr.text  # it runs on this worker
    stack.sim_post("/phone/scan", {"phone": phone, "qr": qr.json()["value"]})
    stack.wait_status(name, "WORKING")


def metric(worker: Served, name: str) -> float:
    for line in loopback.get(worker.base_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_a_killed_worker_is_taken_over_at_lease_expiry_and_nobody_else_pays(
    stack_factory: Callable[..., Stack], pg_schema: str
) -> None:
    stack = first_worker(
        stack_factory,
        pg_schema,
        WAGATE_LEASE_TTL=str(LEASE_TTL),
        WAGATE_RECONCILE_INTERVAL=RECONCILE_INTERVAL,
        WAGATE_MAX_SESSIONS_PER_TENANT="10",
    )
    assert stack.gateway is not None
    a = stack.gateway
    stack.tenant()
    b, c = start_worker(stack, "b"), start_worker(stack, "c")
    # Created in turn through a, b and c, each runs where it was created: 3, 2 and 2, an even spread (nothing is
    # handed over to even it out), the dead worker's share the larger one.
    runs_on = {f"s{n}": (a, b, c)[n % 3] for n in range(7)}
    phones = {name: f"+1555040{n}" for n, name in enumerate(runs_on)}
    for name, worker in runs_on.items():
        link_through(stack, worker, name, phones[name])
    assert [metric(w, 'wagate_sessions{status="WORKING"}') for w in (a, b, c)] == [3, 2, 2]
    orphans = [name for name, worker in runs_on.items() if worker is a]
    kept = [name for name in runs_on if name not in orphans]
    history_before = {name: len(stack.history(name)) for name in kept}

    a.kill()  # SIGKILL: its leases lapse at most LEASE_TTL after its last renewal, which came before this
    killed = time.time()
    seen: list[tuple[float, str, dict[str, Any]]] = []

    def taken_over() -> bool:
        worker = (b, c)[len(seen) % 2]  # the surviving workers' API, both
        with loopback.client(base_url=worker.base_url, headers=stack.key, timeout=5) as http:
            for name in orphans:
                seen.append((time.time(), name, http.get(f"/api/sessions/{name}").json()))
        latest = {name: body for _, name, body in seen[-len(orphans) :]}
        return all(body["status"] == "WORKING" and (body["connected_at"] or 0) > killed for body in latest.values())

    # Waited for long enough to see what a take-over at a later reconcile would do, so that each failure shows.
    wait_for(taken_over, 70, "the dead worker's sessions WORKING again on the others")
    failover = time.time() - killed
    # The survivors took the dead worker's sessions without moving any of their own: no hand-over toward a share
    # computed with the dead worker still counted, no status change of a session that was running.
    wait_for(lambda: metric(b, "wagate_workers_live") == metric(c, "wagate_workers_live") == 2, 10, "two workers")
    time.sleep(LEASE_TTL)  # a few more lease rounds and reconciles of the waiting kind
    assert sorted(metric(w, 'wagate_sessions{status="WORKING"}') for w in (b, c)) == [3, 4]
    assert [metric(w, "wagate_session_handovers_total") for w in (b, c)] == [0, 0]
    stack.gateway = b  # the dead worker's API is gone with it
    assert {name: len(stack.history(name)) for name in kept} == history_before
    # From when its leases had lapsed for sure, a session of the dead worker showed WORKING only once its new owner
    # had connected it (a row its dead worker wrote is not the truth).
    stale = [
        (round(at - killed, 2), name, body["status"])
        for at, name, body in seen
        if at > killed + LEASE_TTL and body["status"] == "WORKING" and (body["connected_at"] or 0) <= killed
    ]
    assert stale == []
    assert failover <= LEASE_TTL + 3, f"took {failover:.1f}s"  # the lease's length, and a few seconds
    phone = phones[orphans[0]]
    stack.sim_post(f"/devices/{phone}/messages", {"from": "+15550002", "text": "after", "count": 5})
    wait_for(lambda: stack.device(phone)["messages_acked"] == 5, 15, "the messages after the take-over")
    for phone in phones.values():
        assert stack.device(phone)["decrypt_failures"] == 0


async def test_a_hung_worker_s_sessions_are_not_shown_working_until_it_renews(
    stack_factory: Callable[..., Stack], pg_schema: str, tmp_path: Path
) -> None:
    """The only worker hangs (SIGSTOP) for longer than a lease: nobody can take its sessions over, and an API
    reading the same database (here one without a supervisor of its own) shows them STARTING (lease_lost), not the
    WORKING its rows say. Once it runs again it renews its leases (nobody took them) and they are WORKING again,
    never having been disconnected."""
    stack = first_worker(stack_factory, pg_schema, WAGATE_LEASE_TTL=str(LEASE_TTL))
    stack.tenant()
    assert stack.gateway is not None
    stack.link("s0", "+15550501")
    connected_at = stack.session("s0")["connected_at"]
    gateway = await Gateway.open(make_settings(tmp_path, pg_url()), schema=pg_schema)
    app = create_app(Node(gateway, supervise=False))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://api.test", headers=stack.key) as api:

        async def status() -> tuple[str, str | None]:
            body = (await api.get("/api/sessions/s0")).json()
            return body["status"], body["reason"]

        assert await status() == ("WORKING", None)
        os.kill(stack.gateway.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(LEASE_TTL + 0.5)
            assert await status() == ("STARTING", "lease_lost")
        finally:
            os.kill(stack.gateway.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + LEASE_TTL
        while await status() != ("WORKING", None):
            assert time.monotonic() < deadline, "the session is not shown WORKING again"
            await asyncio.sleep(0.05)
    await gateway.close()
    assert stack.session("s0")["connected_at"] == connected_at  # the same connection all along

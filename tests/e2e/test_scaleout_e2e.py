"""Four workers on one PostgreSQL, the scale-out benchmark's invariants at a small size: workers that join take
their share, a worker killed right after the spread settled has its sessions WORKING on the others within the lease
TTL and a few seconds, no message is lost or doubled across the kill, and the simulator never sees two connections
of one device at once (a connection replaced by a newer one for the same device: the symptom of two owners)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest

from tests.support import loopback
from tests.support.procs import Served, serve
from tests.support.services import PG_DSN
from tests.support.stack import Stack, first_worker, sessions_working, wait_for

pytestmark = pytest.mark.e2e

SESSIONS = 40
LEASE_TTL = 3.0
PHONES = {f"s{n}": f"+155507{n:02d}" for n in range(SESSIONS)}

# Each session's status, when it connected, and the worker whose lease on it is live (a lease's owner is
# "<worker id>#<run>"; none when no live lease).
LEASES = """
SELECT s.name, s.status, s.connected_at,
       CASE WHEN l.owner IS NOT NULL AND l.expires_at > $1 THEN split_part(l.owner, '#', 1) END AS worker
FROM sessions s LEFT JOIN session_leases l ON l.session_id = s.id
"""


def leases(schema: str) -> dict[str, dict[str, Any]]:
    """Every session by name, as the database has it now: status, connected_at, worker."""

    async def read() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
        try:
            rows: list[asyncpg.Record] = await conn.fetch(LEASES, time.time())
            return rows
        finally:
            await conn.close()

    return {row["name"]: dict(row) for row in asyncio.run(read())}


def spread(schema: str) -> dict[str, int]:
    """The sessions WORKING under a live lease, counted by worker."""
    counts: dict[str, int] = {}
    for row in leases(schema).values():
        if row["worker"] is not None and row["status"] == "WORKING":
            counts[row["worker"]] = counts.get(row["worker"], 0) + 1
    return counts


def link_all(stack: Stack) -> None:
    """Create every session, then scan each one's QR code, several at once; until all are WORKING."""
    with stack.http as http:
        for name in PHONES:
            assert http.post("/api/sessions", json={"name": name}).status_code == 201

        def scan(name: str) -> None:
            def qr() -> str | None:
                answer = http.get(f"/api/{name}/auth/qr", params={"format": "raw"})
                return str(answer.json()["value"]) if answer.status_code == 200 else None

            value = wait_for(qr, 20, f"{name}'s QR code", interval=0.1)
            stack.sim_post("/phone/scan", {"phone": PHONES[name], "qr": value})

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(scan, PHONES))

        def all_working() -> bool:
            listed: list[dict[str, Any]] = http.get("/api/sessions", params={"all": "true"}).json()
            working: int = sum(s["status"] == "WORKING" for s in listed)
            return working == SESSIONS

        wait_for(all_working, 30, "every session linked", interval=0.1)


def start_together(stack: Stack, *worker_ids: str) -> dict[str, Served]:
    """Workers on the stack's database, started at once (each with its own data directory), once all answer."""
    started = {}
    for worker_id in worker_ids:
        (stack.tmp / worker_id).mkdir()
        env = {**stack.env, "WAGATE_WORKER_ID": worker_id, "WAGATE_DATA_DIR": str(stack.tmp / worker_id)}
        started[worker_id] = serve(stack.tmp / worker_id, env)
        stack.started.append(started[worker_id])
    for worker in started.values():
        worker.wait_healthy()
    return started


def sim_totals(stack: Stack) -> dict[str, int]:
    totals: dict[str, int] = loopback.get(f"{stack.sim.base_url}/totals", timeout=15).json()
    return totals


def test_joining_workers_take_a_share_and_a_killed_one_is_taken_over_without_two_owners(
    stack_factory: Callable[..., Stack], pg_schema: str
) -> None:
    stack = first_worker(
        stack_factory,
        pg_schema,
        WAGATE_LEASE_TTL=str(LEASE_TTL),
        WAGATE_MAX_SESSIONS_PER_TENANT=str(SESSIONS),
    )
    assert stack.gateway is not None
    a = stack.gateway
    stack.tenant()
    link_all(stack)
    assert spread(pg_schema) == {"a": SESSIONS}  # alone, a worker runs everything

    # Three workers join at once: each takes its share of what the first ran, moved without a new scan.
    joined = start_together(stack, "b", "c", "d")
    even = dict.fromkeys("abcd", SESSIONS // 4)
    wait_for(lambda: spread(pg_schema) == even, 40, "ten sessions on each of the four workers", interval=0.1)
    assert sim_totals(stack)["replaced"] == 0

    # Messages to a session of the worker about to die: before the kill, while nobody runs it, and after.
    rows = leases(pg_schema)
    orphans = sorted(name for name, row in rows.items() if row["worker"] == "b")
    watched = orphans[0]
    phone = PHONES[watched]
    stack.sim_post(f"/devices/{phone}/messages", {"from": "+15550002", "text": "before", "count": 5})
    wait_for(lambda: stack.device(phone)["messages_acked"] == 5, 15, "the messages before the kill")

    # Killed as soon as the spread settled: the others handed sessions over moments ago, and still take its
    # sessions over at the lease's expiry.
    joined["b"].kill()  # SIGKILL: its leases stay until they lapse
    killed = time.time()
    stack.sim_post(f"/devices/{phone}/messages", {"from": "+15550002", "text": "during", "count": 5})

    def taken_over() -> bool:
        now = leases(pg_schema)
        return all(
            now[name]["status"] == "WORKING"
            and now[name]["worker"] not in (None, "b")
            and (now[name]["connected_at"] or 0) > killed
            for name in orphans
        )

    wait_for(taken_over, 30, "the killed worker's sessions WORKING on the others", interval=0.1)
    takeover = time.time() - killed
    assert takeover <= LEASE_TTL + 5, f"took {takeover:.1f}s"

    def settled() -> dict[str, int] | None:
        """Every session WORKING on the three left, none above its share (14): the spread once it settles."""
        now = spread(pg_schema)
        return now if sum(now.values()) == SESSIONS and max(now.values()) <= -(-SESSIONS // 3) else None

    final: dict[str, int] = wait_for(settled, 15, "the spread over the three workers left", interval=0.1)
    assert final.keys() == {"a", "c", "d"}

    stack.sim_post(f"/devices/{phone}/messages", {"from": "+15550002", "text": "after", "count": 5})
    wait_for(lambda: stack.device(phone)["messages_acked"] == 15, 15, "every message acknowledged")

    def all_connected() -> dict[str, int] | None:
        totals = sim_totals(stack)  # a session still being moved to even the spread is briefly disconnected
        return totals if totals["connected"] == SESSIONS else None

    assert wait_for(all_connected, 15, "every device connected", interval=0.1)["replaced"] == 0  # never two at once
    for name in orphans:
        assert stack.device(PHONES[name])["decrypt_failures"] == 0  # no session lost its keys on the way
    with loopback.client(base_url=a.base_url, headers=stack.key, timeout=15) as http:
        events = http.get("/api/events", params={"session": watched, "types": "message", "limit": 50}).json()
    texts = [e["payload"]["body"] for e in events]
    assert texts == [f"{word} #{n}" for word in ("before", "during", "after") for n in range(1, 6)]  # once, in order
    assert sessions_working(a) == final["a"]

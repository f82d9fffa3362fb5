"""Scale-out benchmark: N linked sim sessions over several ``wagate worker`` processes on one PostgreSQL.

    python bench/scaleout.py --sessions 4000 --dir /tmp/bench/scale4k

Links N sessions through the real QR flow (a ``wagate serve`` with the API, stopped once they are linked), then
starts ``--workers`` (3) workers together and, in each of ``--rounds`` rounds: starts one more worker and times
until it holds its share (the lease rows say who owns what), then SIGKILLs one of the workers (the oldest) and times
until every session it held is WORKING on another worker (a live lease of the other's, connected after the kill).
The target is the lease TTL + 5 s. The simulator counts every connection that a newer one for the same device
replaced (two clients at once): it must stay 0. Prints one JSON line a round and one with the medians.

With ``--dir``, a directory linked by an earlier run is reused (the simulator's state in it, the PostgreSQL schema
it names in ``schema``): linking is the slow part. Without, a temporary directory and a fresh schema are used and
removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import (
    ADMIN,
    cpu_seconds,
    free_port,
    gateway_env,
    link_all,
    machine_shares,
    machine_ticks,
    spawn,
    stop_all,
    wait_http,
    workdir,
)
from sqlalchemy.engine import make_url

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"

# Sessions WORKING under a live lease, by worker id (a lease's owner is "<worker id>#<run>").
SPREAD = """
SELECT split_part(l.owner, '#', 1) AS worker, count(*) AS n
FROM sessions s JOIN session_leases l ON l.session_id = s.id
WHERE s.status = 'WORKING' AND l.owner IS NOT NULL AND l.expires_at > $1
GROUP BY 1
"""
# Of the given sessions, those WORKING under a live lease of a worker other than $2, connected after $4.
ELSEWHERE = """
SELECT count(*) FROM sessions s JOIN session_leases l ON l.session_id = s.id
WHERE s.id = ANY($1::text[]) AND s.status = 'WORKING' AND l.owner IS NOT NULL
  AND split_part(l.owner, '#', 1) <> $2 AND l.expires_at > $3 AND s.connected_at > $4
"""
HELD_BY = "SELECT session_id, expires_at FROM session_leases WHERE split_part(owner, '#', 1) = $1 AND expires_at > $2"
# Where a take-over's time went: when the given sessions were claimed (first, last) and connected (last).
PHASES = """
SELECT min(l.acquired_at) AS first_claim, max(l.acquired_at) AS last_claim, max(s.connected_at) AS last_connected
FROM sessions s JOIN session_leases l ON l.session_id = s.id WHERE s.id = ANY($1::text[])
"""


@dataclass
class Workers:
    """The worker processes of a run, by id, each with its own data directory and port."""

    tmp: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    made: int = 0

    def start(self) -> str:
        self.made += 1
        worker_id = f"w{self.made}"
        data, port = self.tmp / worker_id, free_port()
        data.mkdir(exist_ok=True)
        env = {
            **self.env,
            "WAGATE_WORKER_ID": worker_id,
            "WAGATE_DATA_DIR": str(data),
            "WAGATE_WORKER_URL": f"http://127.0.0.1:{port}",
        }
        self.procs[worker_id] = spawn(["worker", "--port", str(port)], env, self.tmp / f"{worker_id}.log")
        return worker_id

    def kill(self, worker_id: str) -> None:
        proc = self.procs.pop(worker_id)
        proc.kill()
        proc.wait()

    def __iter__(self) -> Iterator[subprocess.Popen[bytes]]:
        return iter(list(self.procs.values()))


class Watch:
    """Reads the lease rows and the sessions' status (read-only) from the run's schema."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def spread(self) -> dict[str, int]:
        rows = await self.conn.fetch(SPREAD, time.time())
        return {row["worker"]: row["n"] for row in rows}

    async def held_by(self, worker_id: str) -> tuple[list[str], float]:
        """The sessions a worker holds, and when the last of its leases expires."""
        rows = await self.conn.fetch(HELD_BY, worker_id, time.time())
        return [row["session_id"] for row in rows], max((row["expires_at"] for row in rows), default=0.0)

    async def phases(self, sessions: list[str], since: float) -> dict[str, float]:
        """Seconds from ``since`` until the sessions were first and last claimed, and last connected."""
        row = await self.conn.fetchrow(PHASES, sessions)
        assert row is not None
        return {f"{name}_s": round(row[name] - since, 2) for name in ("first_claim", "last_claim", "last_connected")}

    async def elsewhere(self, sessions: list[str], dead: str, since: float) -> int:
        count: int = await self.conn.fetchval(ELSEWHERE, sessions, dead, time.time(), since)
        return count

    async def until(self, what: str, check: Any, limit: float) -> float:
        """Seconds until ``await check()`` is true, polled every 50 ms; an error after ``limit`` seconds."""
        start = time.monotonic()
        while not await check():
            if time.monotonic() - start > limit:
                raise RuntimeError(f"not {what} after {limit:.0f}s (spread {await self.spread()})")
            await asyncio.sleep(0.05)
        return time.monotonic() - start


def dsn_of(env: dict[str, str]) -> str:
    return make_url(env["WAGATE_DATABASE_URL"]).set(drivername="postgresql").render_as_string(hide_password=False)


async def schema_for(tmp: Path, dsn: str) -> tuple[str, bool]:
    """The run's schema, and whether it was made now: the one ``tmp/schema`` names if it still exists."""
    named = tmp / "schema"
    conn = await asyncpg.connect(dsn)
    try:
        if named.exists():
            name = named.read_text().strip()
            if await conn.fetchval("SELECT 1 FROM information_schema.schemata WHERE schema_name = $1", name):
                return name, False
        name = "scaleout_" + secrets.token_hex(4)
        await conn.execute(f"CREATE SCHEMA {name}")
        named.write_text(name + "\n")
        return name, True
    finally:
        await conn.close()


async def linked(watch: Watch) -> int:
    """Sessions linked to a phone (stopped or running)."""
    count: int = await watch.conn.fetchval("SELECT count(*) FROM sessions WHERE me IS NOT NULL")
    return count


async def link(tmp: Path, env: dict[str, str], sim: str, n: int, watch: Watch) -> float:
    """Link N sessions through a ``wagate serve`` (API and supervisor), then stop it: its leases are released."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp / "linker"
    data.mkdir(exist_ok=True)
    gateway = spawn(
        ["serve", "--port", str(port)],
        {**env, "WAGATE_WORKER_ID": "linker", "WAGATE_DATA_DIR": str(data)},
        tmp / "linker.log",
    )
    try:
        wait_http(base + "/ready")
        start = time.monotonic()
        async with httpx.AsyncClient(base_url=base, headers={"X-Api-Key": ADMIN}, timeout=30) as admin:
            made = await admin.post("/api/tenants", json={"name": "bench", "max_sessions": n})
            made.raise_for_status()
        await link_all(base, sim, {"X-Api-Key": made.json()["api_key"]}, n)

        async def all_linked() -> bool:
            return sum((await watch.spread()).values()) >= n

        await watch.until("all linked", all_linked, 600)
        return time.monotonic() - start
    finally:
        stop_all(gateway)


async def sim_totals(client: httpx.AsyncClient) -> dict[str, int]:
    answer: dict[str, int] = (await client.get("/totals")).json()
    return answer


async def measure(
    args: argparse.Namespace, tmp: Path, env: dict[str, str], sim_url: str, sim_pid: int, watch: Watch
) -> None:
    n: int = args.sessions
    workers = Workers(tmp, env)
    rounds: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
        try:
            started = time.monotonic()
            for _ in range(args.workers):
                workers.start()

            async def spread_even() -> bool:
                spread = await watch.spread()
                live = [spread.get(w, 0) for w in workers.procs]
                return sum(live) == n and min(live) >= n // len(live)

            await watch.until("the first workers running every session", spread_even, 600)
            first_start = time.monotonic() - started
            print(json.dumps({"workers_started": args.workers, "all_working_s": round(first_start, 2)}), flush=True)
            for number in range(1, args.rounds + 1):
                rounds.append(await one_round(number, workers, watch, sim, sim_pid, n, args.lease_ttl))
                print(json.dumps(rounds[-1]), flush=True)
        finally:
            stop_all(*workers)
        totals = await sim_totals(sim)
    summary: dict[str, Any] = {
        "sessions": n,
        "workers": args.workers,
        "lease_ttl_s": args.lease_ttl,
        "settings": args.set,
        "rounds": len(rounds),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "sim_replaced": totals["replaced"],
        "sim_connections_total": totals["connections_total"],
    }
    for figure in ("join_first_s", "join_share_s", "takeover_s", "takeover_minus_ttl_s", "after_lease_s"):
        values = [r[figure] for r in rounds]
        summary[figure] = {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}
    summary["verdict"] = "held" if all(r["takeover_s"] <= args.lease_ttl + 5 for r in rounds) else "not held"
    print(json.dumps(summary), flush=True)


async def one_round(
    number: int, workers: Workers, watch: Watch, sim: httpx.AsyncClient, sim_pid: int, n: int, ttl: float
) -> dict[str, Any]:
    """One more worker joins and takes its share; then the oldest is killed and its sessions taken over."""
    replaced_before = (await sim_totals(sim))["replaced"]
    joined = time.monotonic()
    new = workers.start()
    share = n // len(workers.procs)

    async def holds_some() -> bool:
        return (await watch.spread()).get(new, 0) > 0

    async def holds_share() -> bool:
        return (await watch.spread()).get(new, 0) >= share

    await watch.until(f"{new} running a session", holds_some, 600)
    join_first = time.monotonic() - joined
    await watch.until(f"{new} running its share ({share})", holds_share, 600)
    join_share = time.monotonic() - joined

    async def settled() -> bool:
        return sum((await watch.spread()).values()) == n

    await watch.until("every session WORKING after the join", settled, 600)
    victim = next(iter(workers.procs))
    orphans, expiry = await watch.held_by(victim)
    pids = {w: proc.pid for w, proc in workers.procs.items() if w != victim} | {"sim": sim_pid}
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ticks = machine_ticks()
    killed = time.time()
    workers.kill(victim)

    async def taken_over() -> bool:
        return await watch.elsewhere(orphans, victim, killed) == len(orphans)

    await watch.until(f"{victim}'s sessions WORKING elsewhere", taken_over, 10 * ttl + 120)
    takeover = time.time() - killed
    cpu = {name: round(cpu_seconds(pid) - cpu[name], 2) for name, pid in pids.items()}
    machine = machine_shares(ticks, machine_ticks())
    phases = await watch.phases(orphans, killed)
    await watch.until("every session WORKING after the take-over", settled, 600)
    totals = await sim_totals(sim)
    return {
        "round": number,
        "joined": new,
        "share": share,
        "join_first_s": round(join_first, 2),
        "join_share_s": round(join_share, 2),
        "killed": victim,
        "orphans": len(orphans),
        "takeover_s": round(takeover, 2),
        "takeover_minus_ttl_s": round(takeover - ttl, 2),
        # Where the take-over's time went, from the kill: the lease left to run, then the claims and connections.
        "lease_expired_s": round(expiry - killed, 2),
        "after_lease_s": round(killed + takeover - expiry, 2),  # from the lease's expiry to the last WORKING
        **phases,
        "takeover_cpu_s": cpu,  # of the workers left and the simulator, from the kill to the last WORKING
        "takeover_machine": machine,
        "spread_after": dict(sorted((await watch.spread()).items())),
        "sim_replaced_in_round": totals["replaced"] - replaced_before,
        "sim_connected": totals["connected"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


async def run(args: argparse.Namespace, tmp: Path) -> None:
    n: int = args.sessions
    sim_port = free_port()
    settings = [f"WAGATE_LEASE_TTL={args.lease_ttl}", *args.set]
    env = gateway_env(
        tmp,
        sim_port,
        {
            "WAGATE_DATABASE_URL": os.environ.get("WAGATE_DATABASE_URL", PG_DEFAULT),
            "WAGATE_MAX_SESSIONS_TOTAL": str(n),
        },
        settings,
    )
    dsn = dsn_of(env)
    schema, made = await schema_for(tmp, dsn)
    env["WAGATE_DATABASE_SCHEMA"] = schema
    sim_url = f"http://127.0.0.1:{sim_port}"
    sim_args = ["sim-server", "--port", str(sim_port), "--state", str(tmp / "sim.json"), "--log-level", "WARNING"]
    sim = spawn([*sim_args, "--qr-first-ttl", "3600"], env, tmp / "sim.log")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        wait_http(sim_url + "/health")
        watch = Watch(conn)
        has_tables = await conn.fetchval("SELECT to_regclass('sessions') IS NOT NULL")
        count = await linked(watch) if has_tables else 0
        if count < n:
            if count:
                raise SystemExit(f"schema {schema} has {count} sessions, fewer than {n}: use another --dir")
            link_s = await link(tmp, env, sim_url, n, watch)
            print(json.dumps({"schema": schema, "linked": n, "link_s": round(link_s, 1)}), flush=True)
        else:
            print(json.dumps({"schema": schema, "reused": count}), flush=True)
        await measure(args, tmp, env, sim_url, sim.pid, watch)
    finally:
        await conn.close()
        stop_all(sim)
        if made and args.dir is None:
            drop = await asyncpg.connect(dsn)
            await drop.execute(f"DROP SCHEMA {schema} CASCADE")
            await drop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=3, help="workers started together before the rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lease-ttl", type=float, default=30.0, help="WAGATE_LEASE_TTL of every worker")
    parser.add_argument("--dir", type=Path, help="work here; a directory linked by an earlier run is reused")
    parser.add_argument("--set", action="append", default=[], help="a worker setting, e.g. WAGATE_REBALANCE_STEP=500")
    args = parser.parse_args()
    with workdir("wagate-scaleout-", args.dir) as tmp:
        asyncio.run(run(args, tmp))


if __name__ == "__main__":
    main()

"""Restore benchmark: N linked sim sessions, the gateway restarted, time until all are WORKING again.

    python bench/restore.py --sessions 1000

Starts a sim-server and a gateway (SQLite) as real processes in a temporary directory (removed at the end; kept with
``--dir``, with a profile, and when the run fails), links N sessions through the real QR flow, stops the gateway
with SIGTERM, starts it again and polls its database (read-only) until every session has been recorded WORKING after
the restart. Prints one JSON line with the figures.

Profiling: ``BENCH_PROFILE=SECONDS`` records the restarted gateway with py-spy (``BENCH_PROFILE_TARGET=sim`` the
sim-server instead; ``BENCH_PROFILE_ARGS="--gil"`` passes options) into ``profile.txt`` in the work directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import (
    ADMIN,
    cpu_seconds,
    cpu_split,
    free_port,
    gateway_env,
    link_all,
    rss_kib,
    spawn,
    stop_all,
    wait_http,
    workdir,
)


def count(db: Path, status: str, since: float = 0.0) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sessions WHERE status = ? AND updated_at > ?", (status, since)
        ).fetchone()
        return int(row[0])


def wait_count(db: Path, status: str, n: int, since: float = 0.0, timeout: float = 600) -> float:
    start = time.monotonic()
    while count(db, status, since) < n:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"only {count(db, status, since)}/{n} sessions {status} after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--dir", type=Path, help="work here; a directory linked by an earlier run is reused as it is")
    parser.add_argument(
        "--set", action="append", default=[], help="a gateway setting, e.g. WAGATE_CONNECT_CONCURRENCY=500"
    )
    args = parser.parse_args()
    # A profile is written into the work directory: kept then, as one given with --dir is.
    keep = args.dir or (Path(tempfile.mkdtemp(prefix="wagate-bench-")) if os.environ.get("BENCH_PROFILE") else None)
    with workdir("wagate-bench-", keep) as tmp:
        restore(args, tmp)


def restore(args: argparse.Namespace, tmp: Path) -> None:
    n: int = args.sessions
    reuse = (tmp / "data" / "wagate.db").exists()
    sim_port, port = free_port(), free_port()
    env = gateway_env(tmp, sim_port, {"WAGATE_MAX_SESSIONS_TOTAL": str(n)}, args.set)
    base = f"http://127.0.0.1:{port}"
    sim = spawn(
        [
            "sim-server",
            "--port",
            str(sim_port),
            "--state",
            str(tmp / "sim.json"),
            "--qr-first-ttl",
            "3600",
            "--log-level",
            "WARNING",
        ],
        env,
        tmp / "sim.log",
    )
    gateway = None
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/health")
        first_started = time.time()
        gateway = spawn(["serve", "--port", str(port)], env, tmp / "gateway.log")
        wait_http(base + "/ready")
        baseline = rss_kib(gateway.pid)
        t0 = time.monotonic()
        db = tmp / "data" / "wagate.db"
        if not reuse:
            made = httpx.post(
                base + "/api/tenants", json={"name": "bench", "max_sessions": n}, headers={"X-Api-Key": ADMIN}
            )
            made.raise_for_status()
            asyncio.run(link_all(base, f"http://127.0.0.1:{sim_port}", {"X-Api-Key": made.json()["api_key"]}, n))
        wait_count(db, "WORKING", n, since=first_started if reuse else 0.0)
        linked_in = time.monotonic() - t0
        rss_linked = rss_kib(gateway.pid)

        stop_started = time.monotonic()
        gateway.send_signal(signal.SIGTERM)
        exit_code = gateway.wait(timeout=60)
        stopped_in = time.monotonic() - stop_started

        restart_wall = time.time()
        sim_cpu = cpu_seconds(sim.pid)
        spawned = time.monotonic()
        gateway = spawn(["serve", "--port", str(port)], env, tmp / "gateway.log")
        profiler = None
        if os.environ.get("BENCH_PROFILE"):
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(sim.pid if os.environ.get("BENCH_PROFILE_TARGET") == "sim" else gateway.pid),
                    "-d",
                    os.environ["BENCH_PROFILE"],
                    "-f",
                    "raw",
                    "-o",
                    str(tmp / "profile.txt"),
                    "-r",
                    "200",
                    *os.environ.get("BENCH_PROFILE_ARGS", "").split(),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        wait_http(base + "/ready")
        ready_in = time.monotonic() - spawned
        wait_count(db, "WORKING", n, since=restart_wall)
        restored_in = time.monotonic() - spawned
        (gateway_user, gateway_sys), sim_cpu = cpu_split(gateway.pid), cpu_seconds(sim.pid) - sim_cpu
        rss_now = rss_kib(gateway.pid)
        peak = rss_kib(gateway.pid, "VmHWM")
        result: dict[str, Any] = {
            "sessions": n,
            "settings": args.set,
            "link_all_s" if not reuse else "first_start_all_working_s": round(linked_in, 2),
            "sigterm_exit_code": exit_code,
            "sigterm_exit_s": round(stopped_in, 2),
            "restart_ready_s": round(ready_in, 2),
            "restart_all_working_s": round(restored_in, 2),
            "restart_cpu_gateway_s": round(gateway_user + gateway_sys, 2),
            "restart_cpu_gateway_sys_s": round(gateway_sys, 2),
            "restart_cpu_sim_s": round(sim_cpu, 2),
            "rss_idle_mib": round(baseline / 1024, 1),
            "rss_linked_mib": round(rss_linked / 1024, 1),
            "rss_after_restore_mib": round(rss_now / 1024, 1),
            "peak_rss_after_restore_mib": round(peak / 1024, 1),
            "rss_per_session_kib": round((rss_now - baseline) / n, 1),
            "sim_rss_mib": round(rss_kib(sim.pid) / 1024, 1),
        }
        print(json.dumps(result))
        if profiler is not None:
            profiler.wait()
            print("profile:", tmp / "profile.txt")
    finally:
        stop_all(gateway, sim)


if __name__ == "__main__":
    main()

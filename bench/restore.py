"""Restore benchmark: N linked sim sessions, the gateway restarted, time until all are WORKING again.

    python bench/restore.py --sessions 1000

Starts a sim-server and a gateway (SQLite) as real processes in a temporary directory, links N sessions through the
real QR flow, stops the gateway with SIGTERM, starts it again and polls its database (read-only) until every session
has been recorded WORKING after the restart. Prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ADMIN = "bench-admin-key-0123456789abcdef"
KEK = "b1:" + base64.b64encode(bytes(range(32))).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "wagate", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


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


async def post_retrying(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST, again after a transport error (an idle keep-alive connection closed by the server as it was reused)."""
    for attempt in range(3):
        try:
            return await client.post(path, json=body)
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def link_all(base: str, sim: str, key: dict[str, str], n: int, parallel: int = 32) -> None:
    limits = httpx.Limits(max_connections=parallel * 2)
    async with (
        httpx.AsyncClient(base_url=base, headers=key, timeout=60, limits=limits) as api,
        httpx.AsyncClient(base_url=sim, timeout=60, limits=limits) as phone,
    ):
        gate = asyncio.Semaphore(parallel)

        async def create(i: int) -> None:
            async with gate:
                response = await post_retrying(api, "/api/sessions", {"name": f"s{i}"})
                response.raise_for_status()

        async def scan(i: int) -> None:
            async with gate:
                for _ in range(200):
                    qr = await api.get(f"/api/s{i}/auth/qr", params={"format": "raw"})
                    if qr.status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                qr.raise_for_status()
                body = {"phone": f"+1555{i:07d}", "qr": qr.json()["value"]}
                scanned = await post_retrying(phone, "/phone/scan", body)
                scanned.raise_for_status()

        await asyncio.gather(*(create(i) for i in range(n)))
        await asyncio.gather(*(scan(i) for i in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--dir", type=Path, help="work here; a directory linked by an earlier run is reused as it is")
    parser.add_argument(
        "--set", action="append", default=[], help="a gateway setting, e.g. WAGATE_CONNECT_CONCURRENCY=500"
    )
    args = parser.parse_args()
    n: int = args.sessions
    tmp: Path = args.dir or Path(tempfile.mkdtemp(prefix="wagate-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    reuse = (tmp / "data" / "wagate.db").exists()
    sim_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
    env.update(
        WAGATE_DATA_DIR=str(tmp / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=KEK,
        WAGATE_SIM_URL=f"http://127.0.0.1:{sim_port}",
        WAGATE_MAX_SESSIONS_TOTAL=str(n),
        WAGATE_LOG_LEVEL="WARNING",
    )
    env.update(item.split("=", 1) for item in args.set)
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
                    str(gateway.pid),
                    "-d",
                    os.environ["BENCH_PROFILE"],
                    "-f",
                    "raw",
                    "-o",
                    str(tmp / "profile.txt"),
                    "-r",
                    "200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        wait_http(base + "/ready")
        ready_in = time.monotonic() - spawned
        wait_count(db, "WORKING", n, since=restart_wall)
        restored_in = time.monotonic() - spawned
        gateway_cpu, sim_cpu = cpu_seconds(gateway.pid), cpu_seconds(sim.pid) - sim_cpu
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
            "restart_cpu_gateway_s": round(gateway_cpu, 2),
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
        for proc in (gateway, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()

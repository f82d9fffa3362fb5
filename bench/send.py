"""Send benchmark: ``POST /api/sendText`` on loopback -> outbound queue -> engine -> the simulator.

    python bench/send.py --sessions 10 --messages 5000 --concurrency 32

Starts a sim-server and a gateway (SQLite unless ``--set WAGATE_DATABASE_URL=...``) as real processes, links the
sessions through the real QR flow, lifts the per-session rate limit (``WAGATE_SEND_RATE``, to measure the gateway,
not the limit) and sends ``--messages`` texts spread over the sessions from ``--concurrency`` concurrent clients.
API latency is each request's round trip (the answer comes once the message is committed to the queue); send
throughput is messages the simulator received per second, from the first request to the last message's arrival.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from harness import ADMIN, cpu_seconds, link_all, stack, workdir


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sim_sent(sim: httpx.AsyncClient, phones: list[str]) -> int:
    answers = await asyncio.gather(*(sim.get(f"/devices/{p}") for p in phones))
    return sum(int(a.json()["sent"]) for a in answers)


async def run(args: argparse.Namespace, base: str, sim_url: str, gateway_pid: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers={"X-Api-Key": ADMIN}, timeout=30) as admin:
        made = await admin.post("/api/tenants", json={"name": "bench", "max_sessions": args.sessions})
    made.raise_for_status()
    key = {"X-Api-Key": made.json()["api_key"]}
    await link_all(base, sim_url, key, args.sessions)
    phones = [f"+1555{i:07d}" for i in range(args.sessions)]
    limits = httpx.Limits(max_connections=args.concurrency)
    async with (
        httpx.AsyncClient(base_url=base, headers=key, timeout=60, limits=limits) as api,
        httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
    ):
        for _ in range(600):
            sessions = (await api.get("/api/sessions")).json()
            if sum(s["status"] == "WORKING" for s in sessions) == args.sessions:
                break
            await asyncio.sleep(0.1)
        latencies: list[float] = []
        failures = 0
        counter = iter(range(args.messages))

        async def client() -> None:
            nonlocal failures
            for n in counter:
                body = {"session": f"s{n % args.sessions}", "chatId": "+15559999", "text": f"bench {n}"}
                started = time.perf_counter()
                response = await api.post("/api/sendText", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 201:
                    failures += 1

        cpu_before = cpu_seconds(gateway_pid)
        started = time.time()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        accepted_s = time.time() - started
        deadline = time.monotonic() + args.drain_timeout
        arrived = 0
        while time.monotonic() < deadline:
            arrived = await sim_sent(sim, phones)
            if arrived >= args.messages - failures:
                break
            await asyncio.sleep(0.05)
        sent_s = time.time() - started
        cpu = cpu_seconds(gateway_pid) - cpu_before
    return {
        "sessions": args.sessions,
        "messages": args.messages,
        "concurrency": args.concurrency,
        "database": dict(item.split("=", 1) for item in args.set).get("WAGATE_DATABASE_URL", "sqlite").split(":")[0],
        "accepted": args.messages - failures,
        "failed_requests": failures,
        "received_by_sim": arrived,
        "api_requests_per_s": round(args.messages / accepted_s, 1),
        "api_latency_ms_p50": round(statistics.median(latencies), 1),
        "api_latency_ms_p99": round(percentile(latencies, 0.99), 1),
        "api_latency_ms_max": round(max(latencies), 1),
        "sent_per_s": round(arrived / sent_s, 1),
        "cpu_gateway_s": round(cpu, 2),
        "wall_s": round(sent_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--drain-timeout", type=float, default=120)
    parser.add_argument("--set", action="append", default=[], help="a gateway setting, e.g. WAGATE_LOG_LEVEL=INFO")
    parser.add_argument("--dir", type=Path, help="keep the run's data and logs here (default: removed at the end)")
    args = parser.parse_args()
    unlimited = {"WAGATE_SEND_RATE": "1000000", "WAGATE_SEND_BURST": "1000", "WAGATE_SEND_QUEUE_MAX": "1000000"}
    with (
        workdir("wagate-bench-send-", args.dir) as tmp,
        stack(tmp, unlimited, args.set) as (base, sim_url, gateway_pid, _sim_pid),
    ):
        print(json.dumps(asyncio.run(run(args, base, sim_url, gateway_pid))))


if __name__ == "__main__":
    main()

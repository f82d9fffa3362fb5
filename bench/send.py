"""Send benchmark: the gateway's CPU per message sent against its CPU per message received, in one run.

    python bench/send.py --sessions 10 --messages 2000 --rounds 5
    python bench/send.py --sessions 10 --messages 2000 --rounds 5 \\
        --set WAGATE_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test

Starts a sim-server and a gateway (SQLite unless ``--set WAGATE_DATABASE_URL=...``) as real processes, links the
sessions through the real QR flow and lifts the per-session rate limit (``WAGATE_SEND_RATE``, to measure the gateway,
not the limit). Then, in each round, two phases against the same gateway and sessions, their order alternating from
round to round:

- **send**: ``--messages`` texts through ``POST /api/sendText``, spread over the sessions, from ``--concurrency``
  concurrent clients; the phase ends when the simulator has every message and the gateway has committed every
  delivery receipt (the simulator keeps a receipt until the gateway acknowledges it, after its commit). The path:
  the API's accept (committed to the queue), the sender (``sending``, the engine, ``sent``) and the receipt.
- **inbound**: ``--inbound`` messages from a contact, queued at once at the simulator, spread over the sessions;
  the phase ends when the gateway has acknowledged every one (after storing it and its ratchet).

Each phase's figure is the gateway process's CPU (user + system, from ``/proc/<pid>/stat``) per message, from the
phase's first request to its end; ``ratio`` is a round's send figure over its inbound figure. A warm-up round of
``--warmup`` messages each way comes first and is left out. Prints one JSON line: every round, then each figure's
median, min and max, and the load average of the machine before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import ADMIN, cpu_seconds, link_all, stack, workdir

CONTACT = "+15559999"
SETTLE = 0.2  # seconds a phase's end is checked again (a receipt may still be on its way)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


class Bench:
    def __init__(self, args: argparse.Namespace, api: httpx.AsyncClient, sim: httpx.AsyncClient, pid: int) -> None:
        self.args = args
        self.api = api
        self.sim = sim
        self.pid = pid
        self.phones = [f"+1555{i:07d}" for i in range(args.sessions)]
        self.sent_so_far = 0
        self.acked_so_far = 0

    async def devices(self) -> list[dict[str, Any]]:
        answers = await asyncio.gather(*(self.sim.get(f"/devices/{p}") for p in self.phones))
        return [a.json() for a in answers]

    async def wait(self, done: Any) -> bool:
        """Poll the simulator until ``done(devices)`` holds twice, ``SETTLE`` seconds apart; whether it did."""
        deadline = time.monotonic() + self.args.drain_timeout
        while time.monotonic() < deadline:
            if done(await self.devices()):
                await asyncio.sleep(SETTLE)
                if done(await self.devices()):
                    return True
            await asyncio.sleep(0.02)
        return False

    async def send(self, count: int) -> dict[str, Any]:
        latencies: list[float] = []
        failures = 0
        counter = iter(range(count))
        sessions = self.args.sessions

        async def client() -> None:
            nonlocal failures
            for n in counter:
                body = {"session": f"s{n % sessions}", "chatId": CONTACT, "text": f"bench {n}"}
                started = time.perf_counter()
                response = await self.api.post("/api/sendText", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 201:
                    failures += 1

        target = self.sent_so_far + count
        cpu_before = cpu_seconds(self.pid)
        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(self.args.concurrency)))
        accepted_s = time.monotonic() - started
        cpu_accepted = cpu_seconds(self.pid) - cpu_before

        def done(devices: list[dict[str, Any]]) -> bool:
            return sum(d["sent"] for d in devices) >= target - failures and not any(
                d["receipts_pending"] for d in devices
            )

        finished = await self.wait(done)
        wall = time.monotonic() - started - SETTLE
        cpu = cpu_seconds(self.pid) - cpu_before
        sent = sum(d["sent"] for d in await self.devices()) - self.sent_so_far
        self.sent_so_far += sent
        return {
            "finished": finished,
            "accepted": count - failures,
            "received_by_sim": sent,
            "cpu_us_per_msg": round(cpu / max(1, sent) * 1e6, 1),
            "cpu_us_per_msg_while_accepting": round(cpu_accepted / max(1, count) * 1e6, 1),
            "api_requests_per_s": round(count / accepted_s, 1),
            "api_latency_ms_p50": round(statistics.median(latencies), 1),
            "api_latency_ms_p99": round(percentile(latencies, 0.99), 1),
            "sent_per_s": round(sent / wall, 1),
        }

    async def inbound(self, count: int) -> dict[str, Any]:
        per_phone = count // len(self.phones)
        target = self.acked_so_far + per_phone * len(self.phones)
        cpu_before = cpu_seconds(self.pid)
        started = time.monotonic()
        body = {"from": CONTACT, "text": "bench", "count": per_phone}
        answers = await asyncio.gather(*(self.sim.post(f"/devices/{p}/messages", json=body) for p in self.phones))
        for answer in answers:
            answer.raise_for_status()

        def done(devices: list[dict[str, Any]]) -> bool:
            return sum(d["messages_acked"] for d in devices) >= target and not any(d["pending"] for d in devices)

        finished = await self.wait(done)
        wall = time.monotonic() - started - SETTLE
        cpu = cpu_seconds(self.pid) - cpu_before
        acked = sum(d["messages_acked"] for d in await self.devices()) - self.acked_so_far
        self.acked_so_far += acked
        return {
            "finished": finished,
            "acked": acked,
            "cpu_us_per_msg": round(cpu / max(1, acked) * 1e6, 1),
            "received_per_s": round(acked / wall, 1),
        }


async def linked(args: argparse.Namespace, base: str, sim_url: str) -> dict[str, str]:
    """A tenant with ``--sessions`` sessions linked and WORKING; its API key header."""
    async with httpx.AsyncClient(base_url=base, headers={"X-Api-Key": ADMIN}, timeout=30) as admin:
        made = await admin.post("/api/tenants", json={"name": "bench", "max_sessions": args.sessions})
    made.raise_for_status()
    key = {"X-Api-Key": made.json()["api_key"]}
    await link_all(base, sim_url, key, args.sessions)
    async with httpx.AsyncClient(base_url=base, headers=key, timeout=30) as api:
        for _ in range(600):
            sessions = (await api.get("/api/sessions")).json()
            if sum(s["status"] == "WORKING" for s in sessions) == args.sessions:
                return key
            await asyncio.sleep(0.1)
    raise RuntimeError("the sessions did not all reach WORKING")


async def run(args: argparse.Namespace, base: str, sim_url: str, gateway_pid: int) -> dict[str, Any]:
    key = await linked(args, base, sim_url)
    limits = httpx.Limits(max_connections=args.concurrency)
    load_before = os.getloadavg()
    async with (
        httpx.AsyncClient(base_url=base, headers=key, timeout=60, limits=limits) as api,
        httpx.AsyncClient(base_url=sim_url, timeout=60) as sim,
    ):
        bench = Bench(args, api, sim, gateway_pid)
        if args.warmup:
            await bench.send(args.warmup)
            await bench.inbound(args.warmup)
        rounds = []
        for n in range(args.rounds):
            if n % 2 == 0:
                sent, received = await bench.send(args.messages), await bench.inbound(args.inbound)
            else:
                received, sent = await bench.inbound(args.inbound), await bench.send(args.messages)
            ratio = sent["cpu_us_per_msg"] / max(received["cpu_us_per_msg"], 0.1)
            rounds.append({"send": sent, "inbound": received, "ratio": round(ratio, 2)})
    database = dict(item.split("=", 1) for item in args.set).get("WAGATE_DATABASE_URL", "sqlite").split(":")[0]
    figures = {
        "send_cpu_us_per_msg": [r["send"]["cpu_us_per_msg"] for r in rounds],
        "inbound_cpu_us_per_msg": [r["inbound"]["cpu_us_per_msg"] for r in rounds],
        "ratio": [r["ratio"] for r in rounds],
        "send_cpu_us_per_msg_while_accepting": [r["send"]["cpu_us_per_msg_while_accepting"] for r in rounds],
        "api_requests_per_s": [r["send"]["api_requests_per_s"] for r in rounds],
        "sent_per_s": [r["send"]["sent_per_s"] for r in rounds],
        "received_per_s": [r["inbound"]["received_per_s"] for r in rounds],
    }
    return {
        "database": database,
        "sessions": args.sessions,
        "messages_sent_per_round": args.messages,
        "messages_received_per_round": args.inbound,
        "concurrency": args.concurrency,
        "all_finished": all(r["send"]["finished"] and r["inbound"]["finished"] for r in rounds),
        # each figure's median over the rounds (what bench/ab.py compares), then its median, min and max
        **{name: round(statistics.median(values), 2) for name, values in figures.items()},
        "spread": {name: spread(values) for name, values in figures.items()},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000, help="messages sent in each round")
    parser.add_argument("--inbound", type=int, default=20000, help="messages received in each round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200, help="messages each way before the rounds, left out")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--set", action="append", default=[], help="a gateway setting, e.g. WAGATE_LOG_LEVEL=INFO")
    parser.add_argument("--dir", type=Path, help="keep the run's data and logs here (default: removed at the end)")
    args = parser.parse_args()
    unlimited = {"WAGATE_SEND_RATE": "1000000", "WAGATE_SEND_BURST": "1000", "WAGATE_SEND_QUEUE_MAX": "1000000"}
    with (
        workdir("wagate-bench-send-", args.dir) as tmp,
        stack(tmp, unlimited, args.set) as (base, sim_url, gateway_pid, _sim_pid),
    ):
        print(f"gateway pid {gateway_pid} (for a profiler)", file=sys.stderr)
        print(json.dumps(asyncio.run(run(args, base, sim_url, gateway_pid))))


if __name__ == "__main__":
    main()

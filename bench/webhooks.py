"""Webhook benchmark: sim message traffic -> events -> signed webhooks on loopback.

    python bench/webhooks.py --sessions 20 --rate 5000 --seconds 20
    python bench/webhooks.py --sessions 20 --burst 50000
    python bench/webhooks.py --sessions 20 --rate 2000 --seconds 20 --trace /tmp/deliveries.csv
    python bench/webhooks.py --sessions 20 --rate 5000 --seconds 20 --warmup 5

Starts a sim-server and a gateway (SQLite unless ``--set WAGATE_DATABASE_URL=...``) as real processes, links the
sessions through the real QR flow and points one webhook (``message``) at a receiver in this process,
which checks every request with the ``standardwebhooks`` verifier. With ``--rate`` the phones receive messages at
that steady total rate for ``--seconds``; with ``--burst`` that many arrive at once and the drain is timed. With
``--warmup N`` each phone first receives N messages, delivered before the timed part starts and left out of it (the
webhook sender's child process starts with the first delivery; without a warm-up the run includes that start).

Latency is measured per event from the envelope's ``timestamp`` (set when the gateway turns the engine's event into
an event, just before it commits) to the request's arrival at the receiver; ``queue_latency`` from the moment the
sim queued the message for the phone (the message's own timestamp: whole seconds, as WAHA gives it, so this one is
coarse); ``store_writes`` and ``store_write_ms_mean`` count the gateway's write
transactions meanwhile and their mean duration, ``delivery_lag_ms_mean`` the mean time from a delivery's commit to
its answer's return to the gateway (all three from its ``/metrics``). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import httptools
import httpx
import uvloop
from harness import (
    ADMIN,
    children,
    cpu_split,
    link_all,
    machine_shares,
    machine_ticks,
    stack,
    workdir,
    written_bytes,
)
from standardwebhooks import Webhook as Verifier


class Receiver:
    """Records each verified delivery once: (arrival time, event timestamp, time the sim queued the message)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float, float]] = []  # (arrived, event timestamp, queued timestamp)
        self.ids: set[str] = set()
        self.duplicates = 0
        self.bad = 0
        self.verifier: Verifier | None = None

    def handle(self, body: bytes, headers: dict[str, str]) -> bool:
        arrived = time.time()
        assert self.verifier is not None
        try:
            envelope = self.verifier.verify(body, headers)
        except Exception:
            self.bad += 1
            return False
        if envelope["id"] in self.ids:
            self.duplicates += 1
        else:
            self.ids.add(envelope["id"])
            # The envelope's time is in ms; the message's (WAHA's WAMessage) in whole seconds.
            self.arrivals.append((arrived, envelope["timestamp"] / 1000, envelope["payload"]["timestamp"]))
        return True


class HookServer(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the receiver, parsed by httptools: the receiver stands for a tenant's
    server on another machine, so it should take as little of this one's CPU as it can (an aiohttp server spent
    about 0.26 ms per request here, as much as a fifth of the gateway's own cost per event)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.headers: dict[str, str] = {}
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.headers = {}
        self.body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        assert self.transport is not None
        ok = self.receiver.handle(bytes(self.body), self.headers)
        self.transport.write(
            b"HTTP/1.1 204 No Content\r\n\r\n" if ok else b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
        )


def write_trace(path: Path, started: float, arrivals: list[tuple[float, float, float]]) -> None:
    """Every delivery as a CSV row: when it arrived (Unix time, and seconds into the run) and its two latencies."""
    lines = ["arrived_unix,arrived_s,latency_ms,queue_latency_ms"]
    for arrived, at, queued in arrivals:
        latency, queue_latency = (arrived - at) * 1000, (arrived - queued) * 1000
        lines.append(f"{arrived:.4f},{arrived - started:.4f},{latency:.2f},{queue_latency:.2f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def gateway_counts(base: str) -> dict[str, float]:
    """From the gateway's /metrics so far: its write transactions (how many, total seconds) and its webhook
    deliveries' lag from commit to answer (how many, total seconds)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        text = (await client.get("/metrics")).text
    prefixes = {
        "writes": 'wagate_store_operation_duration_seconds_count{operation="write"}',
        "write_s": 'wagate_store_operation_duration_seconds_sum{operation="write"}',
        "lagged": "wagate_webhook_delivery_lag_seconds_count ",
        "lag_s": "wagate_webhook_delivery_lag_seconds_sum ",
    }
    found = dict.fromkeys(prefixes, 0.0)
    for line in text.splitlines():
        for field, prefix in prefixes.items():
            if line.startswith(prefix):
                found[field] = float(line.rsplit(" ", 1)[1])
    return found


def inbound(text: str, count: int) -> dict[str, Any]:
    return {"from": "+15559999", "text": text, "count": count}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def offer(sim: str, phones: list[str], rate: float, seconds: float) -> int:
    """Have the sim queue messages evenly at ``rate`` per second in total, spread over the phones, for ``seconds``;
    returns how many, once they are all queued."""
    per_phone = int(rate * seconds / len(phones))
    async with aiohttp.ClientSession(base_url=sim) as client:

        async def add(phone: str) -> None:
            body = {**inbound("bench", per_phone), "over": seconds}
            async with client.post(f"/devices/{phone}/messages", json=body) as response:
                response.raise_for_status()

        await asyncio.gather(*(add(p) for p in phones))
    await asyncio.sleep(seconds)
    return per_phone * len(phones)


async def delivered(receiver: Receiver, count: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``count`` distinct deliveries; whether they came."""
    deadline = time.monotonic() + seconds
    while len(receiver.ids) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - a progress poll
        await asyncio.sleep(0.05)
    return len(receiver.ids) >= count


async def warm_up(sim: str, phones: list[str], receiver: Receiver, per_phone: int) -> None:
    """Deliver ``per_phone`` messages of every phone before the timed part (the webhook sender's child starts with
    the first delivery, and the first requests open the connections), then forget them."""
    async with aiohttp.ClientSession(base_url=sim) as client:
        for phone in phones:
            async with client.post(f"/devices/{phone}/messages", json=inbound("warm-up", per_phone)) as response:
                response.raise_for_status()
    if not await delivered(receiver, per_phone * len(phones), 60):
        raise RuntimeError(f"warm-up: {len(receiver.ids)} of {per_phone * len(phones)} delivered in 60 s")
    receiver.arrivals.clear()
    receiver.ids.clear()
    receiver.duplicates = 0


async def run(args: argparse.Namespace, base: str, sim: str, gateway_pid: int, sim_pid: int) -> dict[str, Any]:
    receiver = Receiver()
    server = await asyncio.get_running_loop().create_server(lambda: HookServer(receiver), "127.0.0.1", 0)
    hook_port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=base, headers={"X-Api-Key": ADMIN}, timeout=30) as admin:
            made = await admin.post("/api/tenants", json={"name": "bench", "max_sessions": args.sessions})
        made.raise_for_status()
        key = {"X-Api-Key": made.json()["api_key"]}
        await link_all(base, sim, key, args.sessions)
        async with httpx.AsyncClient(base_url=base, headers=key, timeout=30) as api:
            for _ in range(600):
                sessions = (await api.get("/api/sessions")).json()
                if sum(s["status"] == "WORKING" for s in sessions) == args.sessions:
                    break
                await asyncio.sleep(0.1)
            hook = await api.post(
                "/api/webhooks", json={"url": f"http://127.0.0.1:{hook_port}/hook", "events": ["message"]}
            )
            hook.raise_for_status()
        receiver.verifier = Verifier(hook.json()["secret"])
        phones = [f"+1555{i:07d}" for i in range(args.sessions)]
        if args.warmup:
            await warm_up(sim, phones, receiver, args.warmup)
        pids = (gateway_pid, sim_pid, os.getpid())
        cpu_before = [cpu_split(pid) for pid in pids]
        written_before = written_bytes(gateway_pid)
        counts_before = await gateway_counts(base)
        ticks_before = machine_ticks()
        started = time.time()
        if args.burst:
            async with httpx.AsyncClient(base_url=sim, timeout=60) as client:
                per_phone = args.burst // len(phones)
                await asyncio.gather(
                    *(
                        client.post(
                            f"/devices/{p}/messages", json={"from": "+15559999", "text": "b", "count": per_phone}
                        )
                        for p in phones
                    )
                )
            expected = per_phone * len(phones)
        else:
            expected = await offer(sim, phones, args.rate, args.seconds)
        await delivered(receiver, expected, args.drain_timeout)
        elapsed = (max(a for a, _, _ in receiver.arrivals) if receiver.arrivals else time.time()) - started
        machine = machine_shares(ticks_before, machine_ticks())
        cpu_after = [cpu_split(pid) for pid in pids]
        written = written_bytes(gateway_pid) - written_before
        # the gateway's children (its webhook sender, started with the first delivery, after cpu_before)
        cpu_children = [cpu_split(pid) for pid in children(gateway_pid)]
        cpu = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(cpu_after, cpu_before, strict=True)]
        counts_after = await gateway_counts(base)
        counted = {field: counts_after[field] - counts_before[field] for field in counts_after}
        writes, lagged = counted["writes"], counted["lagged"]
        latency = [(arrived - at) * 1000 for arrived, at, _ in receiver.arrivals]
        queued = [(arrived - at) * 1000 for arrived, _, at in receiver.arrivals]
        if args.trace:
            write_trace(Path(args.trace), started, receiver.arrivals)
        return {
            "mode": f"burst {args.burst}" if args.burst else f"rate {args.rate}/s for {args.seconds}s",
            "warmup_per_session": args.warmup,
            "sessions": args.sessions,
            "database": dict(item.split("=", 1) for item in args.set)
            .get("WAGATE_DATABASE_URL", "sqlite")
            .split(":")[0],
            "settings": args.set,
            "events_expected": expected,
            "events_delivered": len(receiver.ids),
            "duplicates": receiver.duplicates,
            "failed_verification": receiver.bad,
            "delivered_per_s": round(len(receiver.ids) / elapsed, 1) if elapsed > 0 else None,
            "latency_ms_p50": round(statistics.median(latency), 1) if latency else None,
            "latency_ms_p99": round(percentile(latency, 0.99), 1) if latency else None,
            "latency_ms_max": round(max(latency), 1) if latency else None,
            "queue_latency_ms_p50": round(statistics.median(queued), 1) if queued else None,
            "queue_latency_ms_p99": round(percentile(queued, 0.99), 1) if queued else None,
            "cpu_gateway_s": round(sum(cpu[0]), 2),
            "cpu_sim_s": round(sum(cpu[1]), 2),
            "cpu_receiver_s": round(sum(cpu[2]), 2),
            "cpu_sender_s": round(sum(sum(c) for c in cpu_children), 2),
            # of which in the kernel (loopback TCP among them): system CPU seconds of each process
            "sys_gateway_s": round(cpu[0][1], 2),
            "sys_sim_s": round(cpu[1][1], 2),
            "sys_receiver_s": round(cpu[2][1], 2),
            "wall_s": round(elapsed, 2),
            # The whole machine meanwhile (every process on it, this benchmark's among them): busy, idle, stolen.
            **{f"machine_{name}": share for name, share in machine.items()},
            # What the gateway wrote to storage meanwhile (its database's journal and pages), per event delivered.
            "written_kib_per_event": round(written / 1024 / len(receiver.ids), 2) if receiver.ids else None,
            # The database's write transactions meanwhile: on SQLite one writer, so their time is what others wait.
            "store_writes": int(writes),
            "store_write_ms_mean": round(counted["write_s"] / writes * 1000, 2) if writes else None,
            # From the commit to the sender's answer back in the gateway (its part after the event's commit).
            "delivery_lag_ms_mean": round(counted["lag_s"] / lagged * 1000, 2) if lagged else None,
        }
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5000, help="messages per second, all sessions together")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=0, help="instead of a rate: this many messages at once")
    parser.add_argument("--drain-timeout", type=float, default=120)
    parser.add_argument("--set", action="append", default=[], help="a gateway setting, e.g. WAGATE_LOG_LEVEL=INFO")
    parser.add_argument(
        "--warmup", type=int, default=0, help="messages per session delivered and left out before the timed part"
    )
    parser.add_argument("--trace", default=None, help="a CSV file: every delivery's arrival and latencies")
    parser.add_argument("--dir", type=Path, help="keep the run's data and logs here (default: removed at the end)")
    args = parser.parse_args()
    with (
        workdir("wagate-bench-hooks-", args.dir) as tmp,
        stack(tmp, {"WAGATE_WEBHOOK_ALLOW_PRIVATE": "1"}, args.set) as (base, sim_url, gateway_pid, sim_pid),
    ):
        print(json.dumps(uvloop.run(run(args, base, sim_url, gateway_pid, sim_pid))))


if __name__ == "__main__":
    main()

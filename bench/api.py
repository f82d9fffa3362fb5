"""API overhead: ``GET /api/sessions`` and ``POST /api/sendText`` against a bare FastAPI endpoint, same run.

    python bench/api.py --rounds 5 --seconds 4
    python bench/api.py --set WAGATE_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test

Starts a sim-server and a gateway (SQLite unless ``--set WAGATE_DATABASE_URL=...``) as real processes, makes a
tenant, links ``--sessions`` sessions through the real QR flow and lifts the send rate and queue limits as
``bench/send.py`` does (so every ``sendText`` is accepted). Beside them, in a process of its own, a bare FastAPI app
under uvicorn with the gateway's server settings (uvloop, httptools, no access log) answers ``GET /api/sessions``
with a small JSON list. Each round drives, in turn (the order alternating from round to round), the bare endpoint,
the gateway's ``GET /api/sessions`` and its ``POST /api/sendText`` with ``--clients`` keep-alive connections, each
sending its next request as soon as the last one's answer is in; after a ``sendText`` phase the round waits until
the simulator has every message, so that no phase pays for an earlier one's sending.

The driver is a raw HTTP/1.1 client on an ``asyncio.Protocol`` (uvloop): its own CPU per request is reported
(``driver_cpu_us_per_req``) to show it is not what limits the bare endpoint. Per phase: requests per second, p50
and p99 of the round trip, the server's CPU per request; per round, the gateway's throughput over the bare one's.
Prints one JSON line per round and a last one with each figure's median and [min, max] over the rounds (the
medians as plain figures, for ``bench/ab.py``).

``python bench/api.py --bare-port PORT`` serves the bare app alone (what the benchmark starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import uvloop
from harness import ADMIN, cpu_seconds, free_port, link_all, stack, stop_all, wait_http, workdir

BARE_LIST = [{"name": f"s{i}", "status": "WORKING", "engine": "sim"} for i in range(5)]


def serve_bare(port: int) -> None:
    """The reference: one FastAPI endpoint answering a small JSON list, under uvicorn as the gateway runs it."""
    import uvicorn
    from fastapi import FastAPI

    from wagate.runtime.server import BACKLOG, GRACEFUL_SHUTDOWN_SECONDS

    app = FastAPI()

    @app.get("/api/sessions")
    async def sessions() -> list[dict[str, str]]:
        return BARE_LIST

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
        backlog=BACKLOG,
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve())


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, the answer's status read, its body skipped."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)  # uvloop's do not derive from asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._waiter.set_exception(RuntimeError("an answer without Content-Length"))
            return
        line_end = head.find(b"\r\n", at + 2)
        total = end + 4 + int(head[at + 17 : line_end if line_end > 0 else len(head)])
        if len(self._buffer) < total:
            return
        del self._buffer[:total]
        self._waiter.set_result(int(head[9:12]))

    async def request(self, data: bytes) -> int:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def get_request(host: str, path: str, headers: dict[str, str]) -> Callable[[int], bytes]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    data = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
    return lambda _n: data


def send_request(host: str, headers: dict[str, str], sessions: int) -> Callable[[int], bytes]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST /api/sendText HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\n"

    def make(n: int) -> bytes:
        body = json.dumps({"session": f"s{n % sessions}", "chatId": "+15559999", "text": f"bench {n}"}).encode()
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return make


@dataclass
class Phase:
    """What one phase measured."""

    requests: int = 0
    failed: int = 0
    answered_ok: int = 0  # the warm-up's and the last requests' too: what the server has accepted in all
    latencies: list[float] = field(default_factory=list)  # ms
    wall: float = 0.0
    server_cpu: float = 0.0
    driver_cpu: float = 0.0

    def figures(self, prefix: str) -> dict[str, float]:
        ordered = sorted(self.latencies) or [0.0]
        n = max(1, self.requests)
        return {
            f"{prefix}_req_per_s": round(self.requests / self.wall, 1),
            f"{prefix}_p50_ms": round(ordered[len(ordered) // 2], 2),
            f"{prefix}_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
            f"{prefix}_server_cpu_us_per_req": round(1e6 * self.server_cpu / n, 1),
            f"{prefix}_driver_cpu_us_per_req": round(1e6 * self.driver_cpu / n, 1),
            f"{prefix}_failed": self.failed,
        }


async def drive(
    port: int, make: Callable[[int], bytes], ok: int, server_pid: int, *, clients: int, warmup: float, seconds: float
) -> Phase:
    """``clients`` connections sending ``make(n)`` back to back: ``warmup`` seconds, then ``seconds`` measured."""
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(clients):
        _transport, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
        connections.append(protocol)
    phase = Phase()
    measuring = False
    done = False
    counter = 0

    async def client(conn: _Connection) -> None:
        nonlocal counter
        while not done:
            counter += 1
            data = make(counter)
            started = time.perf_counter()
            status = await conn.request(data)
            phase.answered_ok += status == ok
            if measuring and not done:
                phase.latencies.append((time.perf_counter() - started) * 1000)
                phase.requests += 1
                phase.failed += status != ok

    tasks = [asyncio.create_task(client(conn)) for conn in connections]
    try:
        await asyncio.sleep(warmup)
        server_before, driver_before, started = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
        measuring = True
        await asyncio.sleep(seconds)
        done = True
        phase.wall = time.perf_counter() - started
        phase.server_cpu = cpu_seconds(server_pid) - server_before
        phase.driver_cpu = time.process_time() - driver_before
        await asyncio.gather(*tasks)
    finally:
        done = True
        for conn in connections:
            conn.close()
    return phase


async def prepare(base: str, sim_url: str, sessions: int) -> tuple[str, list[str]]:
    """A tenant with ``sessions`` linked sessions, all WORKING: its key, and the sessions' phones."""
    async with httpx.AsyncClient(base_url=base, headers={"X-Api-Key": ADMIN}, timeout=30) as admin:
        made = await admin.post("/api/tenants", json={"name": "bench", "max_sessions": sessions})
    made.raise_for_status()
    key: str = made.json()["api_key"]
    await link_all(base, sim_url, {"X-Api-Key": key}, sessions)
    async with httpx.AsyncClient(base_url=base, headers={"X-Api-Key": key}, timeout=30) as api:
        for _ in range(600):
            listed = (await api.get("/api/sessions")).json()
            if sum(s["status"] == "WORKING" for s in listed) == sessions:
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the sessions are not all WORKING: {listed}")
    return key, [f"+1555{i:07d}" for i in range(sessions)]


async def drained(sim_url: str, phones: list[str], expected: int, patience: float) -> int:
    """Wait until the simulator has received ``expected`` messages in all; how many it has."""
    deadline = time.monotonic() + patience
    arrived = 0
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
        while time.monotonic() < deadline:
            answers = await asyncio.gather(*(sim.get(f"/devices/{p}") for p in phones))
            arrived = sum(int(a.json()["sent"]) for a in answers)
            if arrived >= expected:
                break
            await asyncio.sleep(0.1)
    return arrived


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


async def run(args: argparse.Namespace, base: str, sim_url: str, gateway_pid: int) -> list[dict[str, Any]]:
    key, phones = await prepare(base, sim_url, args.sessions)
    bare_port, gateway_port = args.bare_port, int(base.rsplit(":", 1)[1])
    bare_pid = args.bare_pid
    host = "127.0.0.1"
    phases: dict[str, tuple[int, Callable[[int], bytes], int, int]] = {
        "bare": (bare_port, get_request(host, "/api/sessions", {}), 200, bare_pid),
        "list": (gateway_port, get_request(host, "/api/sessions", {"X-Api-Key": key}), 200, gateway_pid),
        "send": (gateway_port, send_request(host, {"X-Api-Key": key}, args.sessions), 201, gateway_pid),
    }
    rounds: list[dict[str, Any]] = []
    accepted = 0
    for number in range(args.rounds):
        order = list(phases) if number % 2 == 0 else list(reversed(phases))
        row: dict[str, Any] = {"round": number + 1, "load_average": load_average()}
        for name in order:
            port, make, ok, pid = phases[name]
            seconds = args.send_seconds if name == "send" else args.seconds
            phase = await drive(port, make, ok, pid, clients=args.clients, warmup=args.warmup, seconds=seconds)
            row.update(phase.figures(name))
            if name == "send":
                # Every message accepted reaches the simulator before the next phase starts.
                accepted += phase.answered_ok
                waited = time.monotonic()
                arrived = await drained(sim_url, phones, accepted, args.drain_timeout)
                if arrived < accepted:
                    raise RuntimeError(f"the simulator has {arrived} of the {accepted} messages accepted")
                row["send_drain_s"] = round(time.monotonic() - waited, 2)
        row["list_over_bare"] = round(row["list_req_per_s"] / row["bare_req_per_s"], 4)
        row["send_over_bare"] = round(row["send_req_per_s"] / row["bare_req_per_s"], 4)
        print(json.dumps(row), flush=True)
        rounds.append(row)
    return rounds


def summary(rounds: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Each figure's median (plain, for bench/ab.py) and its [median, min, max] under ``spread``."""
    out: dict[str, Any] = {
        "database": dict(item.split("=", 1) for item in args.set).get("WAGATE_DATABASE_URL", "sqlite").split(":")[0],
        "sessions": args.sessions,
        "clients": args.clients,
        "rounds": len(rounds),
    }
    spread: dict[str, list[float]] = {}
    for name in rounds[0]:
        if name == "round":
            continue
        values = [r[name] for r in rounds]
        out[name] = round(statistics.median(values), 4)
        spread[name] = [round(statistics.median(values), 4), min(values), max(values)]
    out["spread"] = spread
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4, help="measured seconds of each GET phase")
    parser.add_argument("--send-seconds", type=float, default=3, help="measured seconds of each sendText phase")
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--set", action="append", default=[], help="a gateway setting, e.g. WAGATE_LOG_LEVEL=INFO")
    parser.add_argument("--dir", type=Path, help="keep the run's data and logs here (default: removed at the end)")
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_port is not None:
        serve_bare(args.bare_port)
        return
    unlimited = {"WAGATE_SEND_RATE": "1000000", "WAGATE_SEND_BURST": "1000", "WAGATE_SEND_QUEUE_MAX": "1000000"}
    args.bare_port = free_port()
    with workdir("wagate-bench-api-", args.dir) as tmp:
        with (tmp / "bare.log").open("ab") as log:
            bare = subprocess.Popen(
                [sys.executable, __file__, "--bare-port", str(args.bare_port)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_http(f"http://127.0.0.1:{args.bare_port}/api/sessions")
            args.bare_pid = bare.pid
            with (
                stack(tmp, unlimited, args.set) as (base, sim_url, gateway_pid, _sim_pid),
                asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
            ):
                rounds = runner.run(run(args, base, sim_url, gateway_pid))
        finally:
            stop_all(bare)
        print(json.dumps(summary(rounds, args)))


if __name__ == "__main__":
    main()

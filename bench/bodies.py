"""Large request bodies: the gateway's memory and its /health latency while parallel huge POSTs arrive.

    python bench/bodies.py                       # 10 parallel 300 MB POSTs, in each mode below
    python bench/bodies.py --requests 10 --mb 300 --modes chunked,length,keyed

Starts a gateway (SQLite) as a real process; once it is idle, reads its RSS and times ``GET /health`` for a few
seconds (the reference), then ``--requests`` senders, each a process of its own, POST ``--mb`` MB to
``/api/sendText``, streaming the body from one 1 MiB chunk (a sender holds no body in memory), and post again as soon
as they have an answer, for ``--seconds`` (at least once each); meanwhile this process times ``GET /health`` every
20 ms and samples the gateway's RSS every 20 ms. Modes: ``chunked`` (no key, chunked transfer encoding), ``length``
(no key, the length declared), ``keyed`` (a valid tenant key, chunked). The body is one valid JSON object whose text
is the whole size. ``--rss-cap`` kills the gateway if its RSS passes it, so that a run of an unbounded gateway does
not exhaust the machine. Prints one JSON line per mode: RSS idle and peak, /health p50/p99/max at idle (the
reference) and under load, the POSTs' answers, the most of a body sent before an answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from harness import ADMIN, KEK, cpu_seconds, free_port, rss_kib, spawn, stop_all, wait_http, workdir

CHUNK = 1024 * 1024
PATH = "/api/sendText"
HEAD = b'{"session":"s","chatId":"+15550002","text":"'
TAIL = b'"}'


def upload(port: int, size: int, mode: str, key: str | None) -> dict[str, Any]:
    """One POST of ``size`` bytes; what the server answered and how much of the body went out before it did."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.monotonic()
    sent = 0
    outcome: dict[str, Any] = {}
    try:
        conn.connect()
    except OSError as exc:  # the gateway is gone (stopped at the RSS cap)
        return {"connect_error": type(exc).__name__, "mb_sent": 0.0, "seconds": 0.0}
    try:
        conn.putrequest("POST", PATH)
        conn.putheader("Content-Type", "application/json")
        if key is not None:
            conn.putheader("X-Api-Key", key)
        chunked = mode != "length"
        conn.putheader("Transfer-Encoding", "chunked") if chunked else conn.putheader("Content-Length", str(size))
        conn.endheaders()
        filler = b"x" * CHUNK
        parts = [HEAD, *([filler] * ((size - len(HEAD) - len(TAIL)) // CHUNK)), TAIL]
        try:
            for part in parts:
                conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
                sent += len(part)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except OSError as exc:  # the server answered and closed while the body was still going out
            outcome["send_error"] = type(exc).__name__
        try:
            answer = conn.getresponse()
            outcome["status"] = answer.status
            outcome["code"] = json.loads(answer.read() or b"{}").get("error", {}).get("code")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            outcome["read_error"] = type(exc).__name__
    finally:
        conn.close()
    outcome["mb_sent"] = round(sent / 1e6, 1)
    outcome["seconds"] = round(time.monotonic() - started, 2)
    return outcome


def upload_for(port: int, size: int, mode: str, key: str | None, seconds: float) -> list[dict[str, Any]]:
    """``upload`` again and again (a new connection each time) for ``seconds``, at least once. At the lowest
    priority: the senders stand for clients on other machines, and the gateway's two cores are theirs too here."""
    os.nice(19)
    deadline = time.monotonic() + seconds
    outcomes = [upload(port, size, mode, key)]
    while time.monotonic() < deadline and "connect_error" not in outcomes[-1]:
        outcomes.append(upload(port, size, mode, key))
    return outcomes


def health_times(port: int, stop: threading.Event, every: float = 0.02) -> list[float]:
    """Milliseconds of each ``GET /health`` (one keep-alive connection, a new one after an error) until ``stop``."""
    times: list[float] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            conn.request("GET", "/health")
            conn.getresponse().read()
            times.append((time.perf_counter() - started) * 1000)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(every)
    conn.close()
    return times


def summary(times: list[float]) -> dict[str, float]:
    if len(times) < 2:
        return {"n": len(times)}
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"n": len(times), "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2), "max_ms": round(max(times), 2)}


def measure(port: int, pid: int, mode: str, key: str | None, args: argparse.Namespace) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(args.requests) as pool:  # started before anything is timed
        pool.map(time.sleep, [0.1] * args.requests)
        time.sleep(1.0)
        return _measure(pool, port, pid, mode, key, args)


def _measure(pool: Any, port: int, pid: int, mode: str, key: str | None, args: argparse.Namespace) -> dict[str, Any]:
    idle_kib = rss_kib(pid)
    stop = threading.Event()
    reference: list[float] = []
    probe = threading.Thread(target=lambda: reference.extend(health_times(port, stop)))
    probe.start()
    time.sleep(args.reference)
    stop.set()
    probe.join()

    peak_kib = idle_kib
    capped: float | None = None  # the seconds until the RSS passed the cap
    stop = threading.Event()
    loaded: list[float] = []
    probe = threading.Thread(target=lambda: loaded.extend(health_times(port, stop)))
    started, cpu_before = time.monotonic(), cpu_seconds(pid)
    pending = pool.starmap_async(upload_for, [(port, args.mb * 1_000_000, mode, key, args.seconds)] * args.requests)
    probe.start()
    while not pending.ready():
        try:
            peak_kib = max(peak_kib, rss_kib(pid))
        except (OSError, RuntimeError):
            break  # the gateway is gone
        if peak_kib > args.rss_cap * 1024:
            capped = round(time.monotonic() - started, 2)
            os.kill(pid, 9)
            break
        time.sleep(0.02)
    results = [outcome for outcomes in pending.get(timeout=600) for outcome in outcomes]
    elapsed = time.monotonic() - started
    gateway_cpu = cpu_seconds(pid) - cpu_before if capped is None else None
    stop.set()
    probe.join()
    return {
        "mode": mode,
        "requests": args.requests,
        "mb_each": args.mb,
        "rss_idle_mib": round(idle_kib / 1024, 1),
        "rss_peak_mib": round(peak_kib / 1024, 1),
        "rss_growth_mib": round((peak_kib - idle_kib) / 1024, 1),
        "rss_cap_passed_after_s": capped,
        "all_answered_s": round(elapsed, 2),
        "gateway_cpu_s": round(gateway_cpu, 2) if gateway_cpu is not None else None,
        "health_idle": summary(reference),
        "health_loaded": summary(loaded),
        "posts": len(results),
        "answers": dict(Counter(str(r.get("status", r.get("read_error", r.get("connect_error")))) for r in results)),
        "mb_sent_max": max(r["mb_sent"] for r in results),
        "slowest_post_s": max(r["seconds"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--mb", type=int, default=300, help="size of each body, in MB")
    parser.add_argument("--modes", default="chunked,length,keyed")
    parser.add_argument("--reference", type=float, default=3.0, help="seconds of /health timing at idle")
    parser.add_argument("--seconds", type=float, default=10.0, help="each sender posts again and again this long")
    parser.add_argument("--rss-cap", type=int, default=6144, help="MiB of gateway RSS at which the run stops it")
    parser.add_argument("--dir", type=Path, help="keep the run's data and logs here (default: removed at the end)")
    args = parser.parse_args()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
    env |= {"WAGATE_ADMIN_KEY": ADMIN, "WAGATE_KEYS": KEK, "WAGATE_LOG_LEVEL": "WARNING"}
    with workdir("wagate-bench-bodies-", args.dir) as tmp:
        for mode in args.modes.split(","):
            (tmp / mode).mkdir()
            gateway = spawn(["serve", "--port", str(port)], env | {"WAGATE_DATA_DIR": str(tmp / mode)}, tmp / "log")
            try:
                wait_http(f"http://127.0.0.1:{port}/ready")
                made = httpx.post(
                    f"http://127.0.0.1:{port}/api/tenants", json={"name": "t"}, headers={"X-Api-Key": ADMIN}
                )
                key = made.json()["api_key"] if mode == "keyed" else None
                print(json.dumps(measure(port, gateway.pid, mode, key, args)), flush=True)
            finally:
                stop_all(gateway)
    sys.exit(0)


if __name__ == "__main__":
    main()

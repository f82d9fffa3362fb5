"""Engine hosts' cost: memory per session and inbound latency, sim sessions in hosts against in the gateway's process.

    python bench/hosts.py --sessions 100 --rounds 3 --messages 500

Each round runs two stacks side by side, each a sim-server and a gateway: one with the sim engine in the gateway's
process (``WAGATE_HOSTED_ENGINES=``), one with it in engine hosts (``WAGATE_HOSTED_ENGINES=sim``, ``--host-sessions``
per host). Both link ``--sessions`` sessions through the real QR flow, then:

- memory: each gateway's resident memory once it is ready (no session), then, once its sessions are WORKING and have
  settled for two seconds, the resident memory of the gateway and of its engine hosts together; per session is the
  growth divided by the sessions (the hosts' own interpreters included: they are their cost);
- inbound latency: ``--messages`` messages to each stack, one at a time, alternating between the two stacks message
  by message (which goes first alternates too), so that both see the same moments of a shared machine; each from
  just before its simulator is asked to deliver it until its ``message`` event arrives on the tenant's
  WebSocket (stored, committed and published by then), to the next session in turn. The simulator's and the
  WebSocket's share is the same in both modes;
- CPU per message: the CPU seconds the gateway and its hosts spent during the latency phase, per message.

Prints one JSON line per round (both modes, and the hosted/in-process ratios of the round), then one with the median
of each figure over the rounds and its spread (lowest and highest round).

``--neonize`` then measures what neonize's Go library costs, where: a gateway with one neonize session that cannot
reach WhatsApp (it retries, the engine loaded), neonize in the gateway's process and then in an engine host; the
resident memory of the gateway and of its host, two seconds after the session's first failed attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
from harness import ADMIN, children, cpu_seconds, link_all, machine_shares, machine_ticks, rss_kib, stack, workdir

MODES = {"in-process": "", "hosted": "sim"}
FIGURES = ("rss_per_session_kib", "latency_median_ms", "latency_p90_ms", "cpu_per_message_ms")


def host_pids(gateway_pid: int) -> list[int]:
    """The gateway's engine hosts (its other children, such as the webhook sender, are not counted)."""
    found = []
    for pid in children(gateway_pid):
        with contextlib.suppress(OSError):
            if b"wagate.engines.host" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


class Stack:
    """One running stack: its URLs, the tenant's key, its gateway, and the events its WebSocket has delivered."""

    def __init__(self, mode: str, base: str, sim: str, gateway_pid: int) -> None:
        self.mode, self.base, self.sim, self.gateway_pid = mode, base, sim, gateway_pid
        self.key: dict[str, str] = {}
        self.idle_kib = rss_kib(gateway_pid)
        self.arrived: dict[str, float] = {}
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.latencies: list[float] = []

    def tenant(self, sessions: int) -> None:
        body = {"name": "bench", "max_sessions": sessions}
        made = httpx.post(self.base + "/api/tenants", json=body, headers={"X-Api-Key": ADMIN})
        made.raise_for_status()
        self.key = {"X-Api-Key": made.json()["api_key"]}

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in [self.gateway_pid, *host_pids(self.gateway_pid)])

    def memory(self, sessions: int) -> dict[str, Any]:
        hosts = host_pids(self.gateway_pid)
        gateway, hosted = rss_kib(self.gateway_pid), sum(rss_kib(pid) for pid in hosts)
        return {
            "hosts": len(hosts),
            "rss_idle_mib": round(self.idle_kib / 1024, 1),
            "rss_gateway_mib": round(gateway / 1024, 1),
            "rss_hosts_mib": round(hosted / 1024, 1),
            "rss_per_session_kib": round((gateway + hosted - self.idle_kib) / sessions, 1),
        }

    async def read(self, ws: websockets.ClientConnection) -> None:
        async for frame in ws:
            message_id = json.loads(frame)["payload"]["_data"]["id"]  # WhatsApp's id (``id`` is WAHA's serialized)
            self.arrived[message_id] = time.perf_counter()
            if (future := self.waiting.get(message_id)) is not None and not future.done():
                future.set_result(None)

    async def one(self, phone: httpx.AsyncClient, number: int) -> None:
        """One message to the ``number``-th session's phone, timed until its event arrives."""
        body = {"from": "+15550100", "text": "m", "count": 1}
        started = time.perf_counter()
        answer = await phone.post(f"/devices/+1555{number:07d}/messages", json=body)
        answer.raise_for_status()
        (message_id,) = answer.json()["ids"]
        if message_id not in self.arrived:
            future = self.waiting[message_id] = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(future, 30)
            finally:
                del self.waiting[message_id]
        self.latencies.append(self.arrived[message_id] - started)


async def wait_working(stack_: Stack, n: int) -> None:
    async with httpx.AsyncClient(base_url=stack_.base, headers=stack_.key, timeout=30) as api:
        for _ in range(1200):
            sessions = (await api.get("/api/sessions", params={"all": "true"})).json()
            if sum(s["status"] == "WORKING" for s in sessions) == n:
                return
            await asyncio.sleep(0.25)
    raise RuntimeError(f"the {n} sessions of the {stack_.mode} stack did not all become WORKING")


async def timed(stacks: list[Stack], n: int, messages: int) -> None:
    async with contextlib.AsyncExitStack() as scope:
        readers = []
        phones = []
        for one in stacks:
            url = one.base.replace("http://", "ws://") + "/ws?events=message"
            ws = await scope.enter_async_context(websockets.connect(url, additional_headers=one.key, max_size=None))
            readers.append(asyncio.create_task(one.read(ws)))
            phones.append(await scope.enter_async_context(httpx.AsyncClient(base_url=one.sim, timeout=30)))
        for i in range(messages):
            order = [0, 1] if i % 2 == 0 else [1, 0]
            for k in order:
                await stacks[k].one(phones[k], i % n)
        for reader in readers:
            reader.cancel()


def figures(one: Stack, sessions: int, cpu: float, messages: int) -> dict[str, Any]:
    found = sorted(one.latencies)
    return {
        **one.memory(sessions),
        "latency_median_ms": round(1000 * statistics.median(found), 2),
        "latency_p90_ms": round(1000 * found[int(0.9 * (len(found) - 1))], 2),
        "latency_max_ms": round(1000 * found[-1], 2),
        "cpu_per_message_ms": round(1000 * cpu / messages, 3),
    }


def run_round(args: argparse.Namespace) -> dict[str, Any]:
    n = args.sessions
    with contextlib.ExitStack() as scope:
        stacks = []
        for mode, hosted in MODES.items():
            settings = [f"WAGATE_HOSTED_ENGINES={hosted}", f"WAGATE_HOST_SESSIONS={args.host_sessions}", *args.set]
            tmp = scope.enter_context(workdir(f"wagate-bench-hosts-{mode}-"))
            base, sim, pid, _ = scope.enter_context(stack(tmp, {"WAGATE_MAX_SESSIONS_TOTAL": str(n)}, settings))
            stacks.append(Stack(mode, base, sim, pid))
        for one in stacks:
            one.tenant(n)
            asyncio.run(link_all(one.base, one.sim, one.key, n))
            asyncio.run(wait_working(one, n))
        time.sleep(2.0)
        cpu_before = [one.cpu() for one in stacks]
        ticks = machine_ticks()
        asyncio.run(timed(stacks, n, args.messages))
        machine = machine_shares(ticks, machine_ticks())
        cpu = [one.cpu() - before for one, before in zip(stacks, cpu_before, strict=True)]
        result: dict[str, Any] = {"sessions": n, "messages": args.messages, **machine}
        for one, spent in zip(stacks, cpu, strict=True):
            result[one.mode] = figures(one, n, spent, args.messages)
        for figure in FIGURES:
            result[f"ratio_{figure}"] = round(result["hosted"][figure] / result["in-process"][figure], 3)
        return result


def neonize_cost(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"neonize": True}
    for mode, hosted in {"in-process": "", "hosted": "neonize"}.items():
        settings = [f"WAGATE_HOSTED_ENGINES={hosted}", "WAGATE_NEONIZE_PROBE=web.whatsapp.invalid:443", *args.set]
        with workdir(f"wagate-bench-neonize-{mode}-") as tmp, stack(tmp, {}, settings) as (base, _, pid, _):
            one = Stack(mode, base, "", pid)
            one.tenant(1)
            with httpx.Client(base_url=base, headers=one.key, timeout=30) as api:
                api.post("/api/sessions", json={"name": "phone", "engine": "neonize"}).raise_for_status()
                for _ in range(600):
                    if "network unreachable" in (api.get("/api/sessions/phone").json().get("note") or ""):
                        break
                    time.sleep(0.1)
                else:
                    raise RuntimeError("the neonize session never tried to connect")
            time.sleep(2.0)
            memory = one.memory(1)
            result[mode] = {k: memory[k] for k in ("hosts", "rss_idle_mib", "rss_gateway_mib", "rss_hosts_mib")}
    return result


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": True, "rounds": len(rounds)}
    for key in [*(f"{mode}.{figure}" for mode in MODES for figure in FIGURES), *(f"ratio_{f}" for f in FIGURES)]:
        mode, _, figure = key.rpartition(".")
        values = [r[mode][figure] if mode else r[figure] for r in rounds]
        out[key] = {"median": round(statistics.median(values), 3), "low": min(values), "high": max(values)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--host-sessions", type=int, default=50, help="WAGATE_HOST_SESSIONS of the hosted stack")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=500, help="inbound messages timed per stack and round")
    parser.add_argument("--set", action="append", default=[], help="a gateway setting for both stacks, NAME=VALUE")
    parser.add_argument("--neonize", action="store_true", help="also: neonize's memory, in the gateway or in a host")
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        result = run_round(args)
        print(json.dumps(result), flush=True)
        rounds.append(result)
    if rounds:
        print(json.dumps(summary(rounds)))
    if args.neonize:
        print(json.dumps(neonize_cost(args)))


if __name__ == "__main__":
    main()

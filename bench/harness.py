"""What the benchmarks share: ports, processes, polling, and linking sim sessions through the real QR flow."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

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
    user, system = cpu_split(pid)
    return user + system


def written_bytes(pid: int) -> int:
    """Bytes a process has had written to storage so far (its database's journal and pages, its logs)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes for {pid}")


def cpu_split(pid: int) -> tuple[float, float]:
    """A process's user and system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def machine_ticks() -> list[int]:
    """The whole machine's CPU time so far, in clock ticks, as ``/proc/stat`` counts it: user, nice, system, idle,
    iowait, irq, softirq, steal (the hypervisor's share, taken by other guests)."""
    return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_shares(before: list[int], after: list[int]) -> dict[str, float]:
    """The machine between two ``machine_ticks``: the share of all cores (per cent) that was busy, idle (iowait
    included) and stolen by the hypervisor."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent) or 1
    idle = spent[3] + spent[4]
    return {
        "busy_pct": round(100 * (total - idle - spent[7]) / total, 1),
        "idle_pct": round(100 * idle / total, 1),
        "steal_pct": round(100 * spent[7] / total, 1),
    }


def children(pid: int) -> list[int]:
    """The pids of a process's children (the gateway's webhook sender among them)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


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


def stop_all(*procs: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM each process still running; SIGKILL one that has not exited 30 s later."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def gateway_env(tmp: Path, sim_port: int, extra: dict[str, str], settings: list[str]) -> dict[str, str]:
    """A gateway's environment for a bench: data in ``tmp``, sessions on the sim at ``sim_port``, then ``extra``,
    then ``settings`` (NAME=VALUE, from the command line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
    env.update(
        WAGATE_DATA_DIR=str(tmp / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=KEK,
        WAGATE_SIM_URL=f"http://127.0.0.1:{sim_port}",
        WAGATE_DEFAULT_ENGINE="sim",
        WAGATE_LOG_LEVEL="WARNING",
        **extra,
    )
    env.update(dict(item.split("=", 1) for item in settings))
    return env


@contextmanager
def workdir(prefix: str, keep: Path | None = None) -> Iterator[Path]:
    """A directory for one run's data and logs. A new one is removed when the run ends well (a run's database grows
    by hundreds of MB) and kept, its path printed, when it fails, for its logs; ``keep`` (a directory given by the
    user) is used and kept either way."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    except BaseException:
        print(f"the run failed; its data and logs are kept in {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def fresh_schema(env: dict[str, str]) -> Iterator[None]:
    """On PostgreSQL without a schema named: a new schema for this run (``WAGATE_DATABASE_SCHEMA`` in ``env``),
    dropped at the end, so that every run starts from an empty database as it does on SQLite."""
    url = env.get("WAGATE_DATABASE_URL", "")
    if not url.startswith("postgresql") or env.get("WAGATE_DATABASE_SCHEMA"):
        yield
        return
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = "bench_" + secrets.token_hex(4)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f"CREATE SCHEMA {name}"))
    env["WAGATE_DATABASE_SCHEMA"] = name
    try:
        yield
    finally:
        asyncio.run(execute(f"DROP SCHEMA {name} CASCADE"))


@contextmanager
def stack(tmp: Path, env_extra: dict[str, str], settings: list[str]) -> Iterator[tuple[str, str, int, int]]:
    """A sim-server and a gateway as processes (data in ``tmp``, a fresh schema on PostgreSQL; ``settings`` as
    NAME=VALUE override the rest): (gateway URL, sim URL, gateway pid, sim pid); both are stopped at the end."""
    sim_port, port = free_port(), free_port()
    env = gateway_env(tmp, sim_port, env_extra, settings)
    with fresh_schema(env):
        yield from _processes(tmp, env, sim_port, port)


def _processes(tmp: Path, env: dict[str, str], sim_port: int, port: int) -> Iterator[tuple[str, str, int, int]]:
    sim_args = ["sim-server", "--port", str(sim_port), "--state", str(tmp / "sim.json"), "--log-level", "WARNING"]
    sim = spawn([*sim_args, "--qr-first-ttl", "3600"], env, tmp / "sim.log")
    gateway = None
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/health")
        gateway = spawn(["serve", "--port", str(port)], env, tmp / "gateway.log")
        wait_http(f"http://127.0.0.1:{port}/ready")
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}", gateway.pid, sim.pid
    finally:
        stop_all(gateway, sim)

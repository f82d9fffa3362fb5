"""A gateway and a simulator as real processes, and what tests do with them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, free_port, serve, sim_server
from tests.support.receiver import Receiver, ThreadedReceiver
from tests.support.services import pg_url

ADMIN = "stack-admin-key-0123456789abcdef"
FAST = {
    "WAGATE_BACKOFF_BASE": "0.05",
    "WAGATE_BACKOFF_CAP": "0.4",
    "WAGATE_BREAKER_THRESHOLD": "50",
    "WAGATE_BREAKER_RESET": "0.3",
    "WAGATE_MAX_ATTEMPTS": "100",
    "WAGATE_RECONCILE_INTERVAL": "1",
    "WAGATE_LEASE_TTL": "6",
}


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    sim: Served
    gateway: Served | None = None
    port: int = field(default_factory=free_port)
    key: dict[str, str] = field(default_factory=dict)
    started: list[Served] = field(default_factory=list)

    def start(self) -> Served:
        self.gateway = serve(self.tmp, self.env, port=self.port)
        self.started.append(self.gateway)
        self.gateway.wait_healthy()
        return self.gateway

    @property
    def http(self) -> httpx.Client:
        assert self.gateway is not None
        return loopback.client(base_url=self.gateway.base_url, timeout=15, headers=self.key)

    def tenant(self, name: str = "t") -> dict[str, str]:
        assert self.gateway is not None
        made = loopback.post(self.gateway.base_url + "/api/tenants", json={"name": name}, headers={"X-Api-Key": ADMIN})
        assert made.status_code == 201, made.text
        self.key = {"X-Api-Key": made.json()["api_key"]}
        return self.key

    def session(self, name: str) -> dict[str, Any]:
        with self.http as http:
            response = http.get(f"/api/sessions/{name}")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

    def wait_status(self, name: str, status: str, timeout: float = 30, reason: str | None = None) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            session = self.session(name)
            if session["status"] == status and (reason is None or session["reason"] == reason):
                return session
            return None

        found: dict[str, Any] = wait_for(check, timeout, f"{name} to be {status}")
        return found

    def raw_qr(self, name: str) -> str:
        with self.http as http:
            response = http.get(f"/api/{name}/auth/qr", params={"format": "raw"})
            assert response.status_code == 200, response.text
            value: str = response.json()["value"]
            return value

    def link(self, name: str, phone: str, config: dict[str, Any] | None = None) -> None:
        """Create a session and link ``phone`` to it by scanning its QR code."""
        with self.http as http:
            assert http.post("/api/sessions", json={"name": name, "config": config or {}}).status_code == 201
        self.wait_status(name, "SCAN_QR_CODE")
        self.sim_post("/phone/scan", {"phone": phone, "qr": self.raw_qr(name)})
        self.wait_status(name, "WORKING")

    def sim_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = loopback.post(self.sim.base_url + path, json=body, timeout=15)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def device(self, phone: str) -> dict[str, Any]:
        answer: dict[str, Any] = loopback.get(f"{self.sim.base_url}/devices/{phone}", timeout=15).json()
        return answer

    def history(self, name: str) -> list[dict[str, Any]]:
        with self.http as http:
            entries: list[dict[str, Any]] = http.get(f"/api/sessions/{name}/history", params={"limit": 500}).json()
            return entries

    def close(self) -> None:
        for served in self.started:
            served.kill()
        self.sim.kill()


def first_worker(stack_factory: Callable[..., Stack], pg_schema: str, **env: str) -> Stack:
    """A stack whose gateway is worker "a" on PostgreSQL (a schema of its own), started."""
    stack = stack_factory(WAGATE_DATABASE_URL=pg_url(), WAGATE_DATABASE_SCHEMA=pg_schema, WAGATE_WORKER_ID="a", **env)
    stack.start()
    return stack


def start_worker(stack: Stack, worker_id: str) -> Served:
    """Another worker on the stack's database, with its own data directory, once it answers."""
    (stack.tmp / worker_id).mkdir()
    env = {**stack.env, "WAGATE_WORKER_ID": worker_id, "WAGATE_DATA_DIR": str(stack.tmp / worker_id)}
    worker = serve(stack.tmp / worker_id, env)
    stack.started.append(worker)
    worker.wait_healthy()
    return worker


@pytest.fixture
def stack_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    if "pg_schema" in request.fixturenames:
        # Made first, so dropped last: a schema dropped under a running gateway can deadlock with it.
        request.getfixturevalue("pg_schema")
    made: list[Stack] = []

    def make(sim_args: tuple[str, ...] = ("--qr-first-ttl", "30", "--qr-ttl", "10"), **env: str) -> Stack:
        sim = sim_server(tmp_path, *sim_args)
        values = {
            "WAGATE_DATA_DIR": str(tmp_path / "data"),
            "WAGATE_ADMIN_KEY": ADMIN,
            "WAGATE_KEYS": TEST_KEK,
            "WAGATE_SIM_URL": sim.base_url,
            "WAGATE_DEFAULT_ENGINE": "sim",
            **FAST,
            **env,
        }
        stack = Stack(tmp_path, clean_env(**values), sim)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    made = stack_factory()
    made.start()
    made.tenant()
    return made


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback, in a thread of its own (the processes under test post to it)."""
    with ThreadedReceiver(Receiver()) as running:
        yield running


def sessions_working(served: Served) -> int:
    """The sessions a process runs WORKING, from its own /metrics."""
    text = loopback.get(served.base_url + "/metrics", timeout=5).text
    found = re.search(r'^wagate_sessions\{status="WORKING"\} (\S+)$', text, re.MULTILINE)
    assert found is not None, text
    return int(float(found.group(1)))

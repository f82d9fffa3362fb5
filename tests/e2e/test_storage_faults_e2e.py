"""The database refusing writes, for real, while sessions run: a full disk (a small tmpfs filled to the last byte, or
SQLite's page limit where no file system can be mounted), a read-only database (SQLite's own read-only switch), and
PostgreSQL refusing writes (its sessions read-only, as on a standby).

While it lasts no session's runner dies: every API write answers a JSON 503, ``/ready`` is 503 with the reason, and
the API does not show a disconnected session as WORKING. Once writes go through again, every session that should run
is WORKING again within 10 s by itself, what was received meanwhile is stored once, sends go out once, and
``restart`` works.

The gateway runs in this process (served on loopback), so that SQLite's switches can be set on its connections; the
simulator is a process of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from tests.support import loopback
from tests.support.builders import ADMIN_KEY, make_settings
from tests.support.procs import Served, free_port, sim_server
from tests.support.services import PG_DSN, pg_url
from wagate.api.app import create_app
from wagate.config import Settings
from wagate.gateway import Gateway
from wagate.runtime.node import Node
from wagate.runtime.server import GatewayServer
from wagate.services.accounts import create_tenant
from wagate.store.sql import SqlStore
from wagate.store.sql.db import Database
from wagate.supervisor.supervisor import Supervisor

pytestmark = pytest.mark.e2e

PHONE = "+15550601"
CONTACT = "+15550602"
RECOVERY = 10.0  # seconds within which every session that should run is WORKING again
TMPFS = "16m"  # room for the database and its WAL, and little more


class Fault(Protocol):
    code: str  # the API's error code while it lasts
    total: bool  # every write is refused (not only those that need room)

    async def start(self) -> None: ...

    async def end(self) -> None: ...


# faults -----------------------------------------------------------------------------------------------------------


@dataclass
class FullDisk:
    """The file system of the data directory fills up: a file grows until the disk says ENOSPC."""

    data_dir: Path
    code: str = "storage_full"
    total: bool = True

    async def start(self) -> None:
        with (self.data_dir / "filler").open("wb") as filler:
            chunk = b"\0" * 65536
            with contextlib.suppress(OSError):  # ENOSPC: the disk is full
                while True:
                    filler.write(chunk)
                    filler.flush()

    async def end(self) -> None:
        (self.data_dir / "filler").unlink()


@dataclass
class PageLimit:
    """SQLite's own limit on the database's size, set to the size it has: nothing that needs a new page fits."""

    db: Database
    code: str = "storage_full"
    total: bool = False  # a write that finds room in the pages the database has goes through

    async def start(self) -> None:
        async with self.db.read() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
            free = (await conn.exec_driver_sql("PRAGMA freelist_count")).scalar_one()
        assert free * 4096 < 65536, f"{free} free pages: room for a probe, the limit would not be felt"
        await _on_writers(self.db, f"PRAGMA max_page_count = {pages}")

    async def end(self) -> None:
        await _on_writers(self.db, "PRAGMA max_page_count = 1073741823")


async def _on_writers(db: Database, pragma: str) -> None:
    """A per-connection setting on both of the gateway's SQLite writers (the asynchronous one and the hot paths')."""
    async with db.write() as conn:
        await conn.exec_driver_sql(pragma)
    await db.run_write(lambda conn: conn.exec_driver_sql(pragma))


@dataclass
class ReadOnly:
    """SQLite's read-only switch (``query_only``), on both of the gateway's writer connections: every write is
    refused with SQLITE_READONLY, as on a read-only database file. (A read-only bind mount cannot be made under a
    process that holds files open for writing, and a file system that the kernel turned read-only after an error
    stays so until it is unmounted: neither lets writes come back.) Set on the drivers' connections themselves,
    outside any transaction: under it, the writers' BEGIN IMMEDIATE is refused already."""

    db: Database
    code: str = "store_unavailable"
    total: bool = True

    async def start(self) -> None:
        await self._switch(True)

    async def end(self) -> None:
        await self._switch(False)

    async def _switch(self, on: bool) -> None:
        pragma = f"PRAGMA query_only = {int(on)}"
        db = self.db
        async with db._writer.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.execute(pragma)
        assert db._write_lock is not None
        assert db._thread is not None
        async with db._write_lock:
            if db._sync_conn is None:
                db._sync_conn = db._sync_writer.connect() if db._sync_writer is not None else None
            sync = db._sync_conn
            assert sync is not None
            raw = sync.connection.driver_connection
            assert raw is not None
            await asyncio.get_running_loop().run_in_executor(db._thread, raw.execute, pragma)


@dataclass
class PostgresReadOnly:
    """PostgreSQL refusing writes: the gateway's role gets read-only transactions and its connections are cut
    (as when the database it used becomes a standby); its writes then fail with SQLSTATE 25006. Undone the same way
    (as when a writable primary is back)."""

    role: str
    code: str = "store_unavailable"
    total: bool = True

    async def start(self) -> None:
        await _as_postgres(f"ALTER ROLE {self.role} SET default_transaction_read_only = on", self._cut())

    async def end(self) -> None:
        await _as_postgres(f"ALTER ROLE {self.role} RESET default_transaction_read_only", self._cut())

    def _cut(self) -> str:
        return f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{self.role}'"  # noqa: S608 (the test's own role name)


async def _as_postgres(*statements: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# the gateway, in this process -------------------------------------------------------------------------------------


@dataclass
class Running:
    settings: Settings
    app: Any
    server: GatewayServer
    task: asyncio.Task[None]
    base_url: str

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    @property
    def supervisor(self) -> Supervisor:
        supervisor = self.app.state.node.supervisor
        assert isinstance(supervisor, Supervisor)
        return supervisor

    @property
    def db(self) -> Database:
        store = self.gateway.store
        assert isinstance(store, SqlStore)
        return store.db


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    port = free_port()
    settings = settings.with_overrides(port=port)
    gateway = await Gateway.open(settings)
    app = create_app(Node(gateway))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = GatewayServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the gateway did not start"
            await asyncio.sleep(0.02)
        yield Running(settings, app, server, task, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task
        await gateway.close()


def gateway_settings(data_dir: Path, sim: Served, url: str | None = None, **extra: object) -> Settings:
    return make_settings(
        data_dir,
        url,
        sim_url=sim.base_url,
        default_engine="sim",
        worker_id="w",
        backoff_base=0.05,
        backoff_cap=0.4,
        breaker_threshold=50,
        breaker_reset=0.3,
        max_attempts=100,
        reconcile_interval=1.0,
        lease_ttl=6.0,
        **extra,
    )


@contextlib.contextmanager
def tmpfs(path: Path) -> Iterator[Path | None]:
    """A tmpfs of ``TMPFS`` mounted at ``path`` (unmounted afterwards), or None where none can be mounted (not
    root, no ``mount``, no right to mount in this container)."""
    path.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS}", "tmpfs", str(path)]
    mounted = os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(command).returncode == 0
    if not mounted:
        yield None
        return
    try:
        yield path
    finally:
        gc.collect()  # tracebacks of the driver's errors, in cycles, hold cursors: their connections' files stay open
        if subprocess.run(["umount", str(path)]).returncode != 0:
            # Still busy: the log records captured for this test keep such errors. Detached now, freed with them.
            subprocess.run(["umount", "--lazy", str(path)], check=True)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Served]:
    served = sim_server(tmp_path, "--qr-first-ttl", "30", "--qr-ttl", "10")
    yield served
    served.kill()


# the scenario -----------------------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Scene:
    def __init__(self, gw: Running, sim: Served, http: httpx.AsyncClient) -> None:
        self.gw = gw
        self.sim = sim
        self.http = http
        self.key: dict[str, str] = {}

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.key, **kwargs)

    async def sim_post(self, path: str, body: dict[str, Any]) -> Any:
        async with loopback.async_client(base_url=self.sim.base_url, timeout=15) as sim:
            answer = await sim.post(path, json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def device(self) -> dict[str, Any]:
        async with loopback.async_client(base_url=self.sim.base_url, timeout=15) as sim:
            described: dict[str, Any] = (await sim.get(f"/devices/{PHONE}")).json()
            return described

    async def sent_texts(self) -> list[str]:
        async with loopback.async_client(base_url=self.sim.base_url, timeout=15) as sim:
            return [str(m.get("text")) for m in (await sim.get(f"/devices/{PHONE}/sent")).json()]

    async def status(self) -> dict[str, Any]:
        answer = await self.api("GET", "/api/sessions/s")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def row_status(self) -> str:
        (tenant,) = await self.gw.gateway.store.tenants.list_all()
        row = await self.gw.gateway.store.sessions.get(tenant.id, "s")
        assert row is not None
        return row.status.value

    async def received(self) -> list[str]:
        answer = await self.api("GET", "/api/events", params={"types": "message", "limit": 200})
        return [e["payload"]["body"] for e in answer.json()]

    async def link(self) -> None:
        made = await self.http.post("/api/tenants", json={"name": "t"}, headers={"X-Api-Key": ADMIN_KEY})
        assert made.status_code == 201, made.text
        self.key = {"X-Api-Key": made.json()["api_key"]}
        assert (await self.api("POST", "/api/sessions", json={"name": "s"})).status_code == 201
        await eventually(lambda: self._is("SCAN_QR_CODE"), 10, "a QR code")
        qr = await self.api("GET", "/api/s/auth/qr", params={"format": "raw"})
        await self.sim_post("/phone/scan", {"phone": PHONE, "qr": qr.json()["value"]})
        await eventually(lambda: self._is("WORKING"), 10, "WORKING")

    async def _is(self, status: str) -> bool:
        return bool((await self.status())["status"] == status)

    async def not_working(self) -> dict[str, Any] | None:
        shown = await self.status()
        return shown if shown["status"] != "WORKING" else None

    async def recovered(self) -> bool:
        ready = await self.http.get("/ready")
        return await self._is("WORKING") and await self.row_status() == "WORKING" and ready.status_code == 200

    async def reconnected_since(self, connected_at: float) -> bool:
        shown = await self.status()
        return bool(shown["status"] == "WORKING" and shown["connected_at"] > connected_at)

    async def acked(self, count: int) -> bool:
        return bool((await self.device())["messages_acked"] >= count)

    async def sent_count(self, text: str, count: int) -> bool:
        return (await self.sent_texts()).count(text) >= count

    async def send(self, text: str) -> httpx.Response:
        return await self.api("POST", "/api/sendText", json={"session": "s", "chatId": CONTACT, "text": text})

    async def send_image(self) -> httpx.Response:
        data = base64.b64encode(b"\x89PNG" + bytes(200_000)).decode()
        body = {"session": "s", "chatId": CONTACT, "file": {"mimetype": "image/png", "data": data}}
        return await self.api("POST", "/api/sendImage", json=body)


def json_error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == code, error
    message: str = error["message"]
    return message


# Long enough that a handful of them needs new pages of the database: under the page limit too, they cannot be stored.
DURING = "received while the database refused writes " + "x" * 3000


async def scenario(gw: Running, sim: Served, fault: Fault) -> None:
    async with loopback.async_client(base_url=gw.base_url, timeout=15) as http:
        scene = Scene(gw, sim, http)
        await scene.link()
        assert (await scene.send("before")).status_code == 201
        await eventually(lambda: scene.sent_count("before", 1), 10, "the first message sent")
        await scene.sim_post(f"/devices/{PHONE}/messages", {"from": CONTACT, "text": "first", "count": 2})
        await eventually(lambda: scene.acked(2), 10, "the first messages acknowledged")
        (runner,) = gw.supervisor.runners.values()

        await fault.start()
        try:
            # An API write is refused with the JSON error (nothing done: it can be sent again), /ready says why.
            json_error(await scene.send_image(), 503, fault.code)
            if fault.total:
                json_error(await scene.api("POST", "/api/sessions", json={"name": "other"}), 503, fault.code)
                json_error(await scene.api("POST", "/api/sessions/s/restart"), 503, fault.code)
            assert "refuses writes" in json_error(await http.get("/ready"), 503, fault.code)
            # What comes in cannot be stored: it is not acknowledged, the session disconnects to wait, and the API
            # says so (its row, which could not be written, still says WORKING).
            await scene.sim_post(f"/devices/{PHONE}/messages", {"from": CONTACT, "text": DURING, "count": 5})
            waiting = await eventually(scene.not_working, 10, "the session shown disconnected")
            assert waiting["status"] == "STARTING"
            assert "database refuses writes" in waiting["note"]
            await asyncio.sleep(2.0)  # a while: the runner waits for the database, it does not end
            assert list(gw.supervisor.runners.values()) == [runner]
            assert runner.task is not None
            assert not runner.task.done()
            assert (await scene.status())["status"] == "STARTING"
            assert (await scene.device())["messages_acked"] == 2
            json_error(await http.get("/ready"), 503, fault.code)
        finally:
            await fault.end()

        # Writes go through again: by itself, the session is WORKING again (recorded so) and the gateway ready.
        freed = time.monotonic()
        await eventually(scene.recovered, RECOVERY, "WORKING again, recorded, and ready")
        assert time.monotonic() - freed <= RECOVERY
        # What came in meanwhile is stored once, in order; sends accepted now go out once; the runner is the same.
        during = [f"{DURING} #{n}" for n in range(1, 6)]
        await eventually(lambda: scene.acked(7), 10, "the messages received meanwhile acknowledged")
        assert await scene.received() == ["first #1", "first #2", *during]
        assert (await scene.send("after")).status_code == 201
        await eventually(lambda: scene.sent_count("after", 1), 10, "a message sent after the recovery")
        assert (await scene.sent_texts()).count("before") == 1
        assert list(gw.supervisor.runners.values()) == [runner]
        # restart works on such a session as on any other.
        connected = (await scene.status())["connected_at"]
        assert (await scene.api("POST", "/api/sessions/s/restart")).status_code == 201
        await eventually(lambda: scene.reconnected_since(connected), RECOVERY, "WORKING after a restart")
        await scene.sim_post(f"/devices/{PHONE}/messages", {"from": CONTACT, "text": "later", "count": 1})
        await eventually(lambda: scene.acked(8), 10, "a message received after the restart")
        assert (await scene.received())[-1] == "later"
        assert (await scene.device())["decrypt_failures"] == 0
        await asyncio.sleep(0.5)
        assert (await scene.sent_texts()).count("after") == 1


@pytest.fixture
def pg_role(pg_schema: str) -> Iterator[str]:
    """A role of this test's own, owning its schema: what is done to the role touches nothing else."""
    role = f"r_{uuid.uuid4().hex[:12]}"
    asyncio.run(_as_postgres(f"CREATE ROLE {role} LOGIN", f"ALTER SCHEMA {pg_schema} OWNER TO {role}"))
    yield role
    asyncio.run(_as_postgres(f"REASSIGN OWNED BY {role} TO postgres", f"DROP ROLE {role}"))


@pytest.mark.parametrize("kind", ["full_disk", "page_limit", "read_only"])
async def test_sessions_outlive_a_sqlite_database_that_refuses_writes(kind: str, tmp_path: Path, sim: Served) -> None:
    data = tmp_path / "data"
    with tmpfs(data) as mounted:
        async with running(gateway_settings(data, sim)) as gw:
            fault: Fault
            if kind == "read_only":
                fault = ReadOnly(gw.db)
            elif kind == "full_disk" and mounted is not None:
                fault = FullDisk(mounted)
            else:  # the page limit; also for a full disk where no file system can be mounted
                fault = PageLimit(gw.db)
            await scenario(gw, sim, fault)


async def test_sessions_outlive_postgresql_refusing_writes(
    tmp_path: Path, sim: Served, pg_schema: str, pg_role: str
) -> None:
    url = make_url(pg_url()).set(username=pg_role).render_as_string(hide_password=False)
    async with running(gateway_settings(tmp_path / "data", sim, url, database_schema=pg_schema)) as gw:
        await scenario(gw, sim, PostgresReadOnly(pg_role))


async def test_a_body_refused_while_the_database_is_unreachable_answers_the_shared_503(
    tmp_path: Path, sim: Served, pg_schema: str, pg_role: str
) -> None:
    """A request with a body is checked for its key before the body is read; when the key cannot be looked up (the
    database unreachable), the answer is the same 503 as anywhere else: its code, a Retry-After, the JSON shape."""
    url = make_url(pg_url()).set(username=pg_role).render_as_string(hide_password=False)
    async with running(gateway_settings(tmp_path / "data", sim, url, database_schema=pg_schema)) as gw:
        _, issued = await create_tenant(gw.gateway.store, "t")
        cut = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{pg_role}'"  # noqa: S608
        await _as_postgres(f"ALTER ROLE {pg_role} NOLOGIN", cut)
        try:
            async with loopback.async_client(base_url=gw.base_url, timeout=15) as http:
                answer = await http.post(
                    "/api/sendText",
                    json={"session": "s", "chatId": "+15550002", "text": "hi"},
                    headers={"X-Api-Key": issued.secret},
                )
        finally:
            await _as_postgres(f"ALTER ROLE {pg_role} LOGIN")
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "store_unavailable"
        assert answer.headers["retry-after"] == "5"
        assert answer.headers["connection"] == "close"

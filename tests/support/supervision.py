"""A simulator on loopback (uvicorn in this process) and a supervisor driving sessions on it: what the supervisor,
damage and engine-host suites start from."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.support import loopback
from tests.support.procs import free_port
from wagate.domain.sessions import Desired, NewSession, Quotas, Session, Status
from wagate.engines.registry import EngineRegistry
from wagate.engines.sim.app import create_sim_app
from wagate.engines.sim.server import SimOptions, SimServer
from wagate.gateway import Gateway
from wagate.runtime.server import GatewayServer
from wagate.supervisor.supervisor import Supervisor

PHONE = "+15550001"


class Sim:
    def __init__(self, server: SimServer, url: str) -> None:
        self.server = server
        self.url = url

    async def post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        async with loopback.async_client(base_url=self.url) as http:
            response = await http.post(path, json=body)
            assert response.status_code == 200, response.text
            answer: dict[str, object] = response.json()
            return answer


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    import uvicorn

    server = SimServer(SimOptions(qr_first_ttl=20, qr_ttl=5), tmp_path / "sim.json")
    port = free_port()
    config = uvicorn.Config(
        create_sim_app(server),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        ws_per_message_deflate=False,
    )
    http_server = GatewayServer(config)
    task = asyncio.create_task(http_server.serve())
    while not http_server.started:
        await asyncio.sleep(0.01)
    yield Sim(server, f"http://127.0.0.1:{port}")
    http_server.should_exit = True
    await task


async def eventually(check: Callable[[], Awaitable[object]], what: str, timeout: float = 10) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def status_of(gateway: Gateway, session: Session, status: Status) -> Session:
    async def check() -> Session | None:
        current = await gateway.store.sessions.get(session.tenant_id, session.name)
        return current if current is not None and current.status is status else None

    found = await eventually(check, f"{session.name} to be {status.value}")
    assert isinstance(found, Session)
    return found


def supervisor_for(gateway: Gateway, sim: Sim, worker: str = "w1") -> Supervisor:
    settings = gateway.settings.with_overrides(worker_id=worker, lease_ttl=2.0, reconcile_interval=0.2)
    gw = Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock)
    return Supervisor(gw, EngineRegistry(settings, sim_url=sim.url), rng=random.Random(7))


@pytest.fixture
async def session(gateway: Gateway) -> Session:
    tenant = await gateway.store.tenants.create("t", contact_email=None, max_sessions=None)
    return await gateway.store.sessions.create(
        NewSession(tenant.id, "main", "sim", {}, Desired.RUNNING), quotas=Quotas(5, 100), actor="test"
    )


async def link(gateway: Gateway, sim: Sim, supervisor: Supervisor, session: Session, phone: str = PHONE) -> None:
    await status_of(gateway, session, Status.SCAN_QR_CODE)
    qr = supervisor.qr(session.id)
    assert qr is not None
    await sim.post("/phone/scan", {"phone": phone, "qr": qr.code})
    await status_of(gateway, session, Status.WORKING)

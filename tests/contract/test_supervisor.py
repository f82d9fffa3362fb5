"""The supervisor and the sim engine over each store backend, with a real simulator on loopback."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings
from tests.e2e.procs import free_port
from wagate.domain.sessions import Desired, Quotas, Reason, Session, Status
from wagate.engines.registry import EngineRegistry
from wagate.engines.sim.app import create_sim_app
from wagate.engines.sim.server import SimOptions, SimServer
from wagate.errors import LeaseLost
from wagate.gateway import Gateway
from wagate.server import GatewayServer
from wagate.store.base import NewSession
from wagate.supervisor.supervisor import Supervisor

PHONE = "+15550001"


class Sim:
    def __init__(self, server: SimServer, url: str) -> None:
        self.server = server
        self.url = url

    async def post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        async with httpx.AsyncClient(base_url=self.url) as http:
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


async def link(gateway: Gateway, sim: Sim, supervisor: Supervisor, session: Session) -> None:
    await status_of(gateway, session, Status.SCAN_QR_CODE)
    qr = supervisor.qr(session.id)
    assert qr is not None
    await sim.post("/phone/scan", {"phone": PHONE, "qr": qr.code})
    await status_of(gateway, session, Status.WORKING)


async def test_link_restart_and_messages_without_a_new_qr(gateway: Gateway, sim: Sim, session: Session) -> None:
    first = supervisor_for(gateway, sim)
    await first.start()
    await link(gateway, sim, first, session)
    await sim.post(f"/devices/{PHONE}/messages", {"from": "+15550002", "text": "hello", "count": 50})
    await eventually(lambda: _acked(sim, 50), "50 acks")
    await first.stop()
    lease = await gateway.store.leases.get(session.id)
    assert lease is not None
    assert lease.owner is None  # released on a graceful stop

    second = supervisor_for(gateway, sim)
    await second.start()
    await status_of(gateway, session, Status.WORKING)
    assert second.qr(session.id) is None
    await sim.post(f"/devices/{PHONE}/messages", {"from": "+15550002", "text": "again", "count": 50})
    await eventually(lambda: _acked(sim, 100), "100 acks")
    assert sim.server.describe(PHONE)["decrypt_failures"] == 0
    await second.stop()


async def _acked(sim: Sim, count: int) -> bool:
    return bool(sim.server.describe(PHONE)["messages_acked"] >= count)


async def test_one_owner_and_fenced_takeover(gateway: Gateway, sim: Sim, session: Session) -> None:
    first = supervisor_for(gateway, sim, "w1")
    second = supervisor_for(gateway, sim, "w2")
    await first.start()
    await link(gateway, sim, first, session)
    await second.start()
    await asyncio.sleep(0.5)  # several reconcile rounds
    assert session.id in first.runners
    assert session.id not in second.runners  # the lease keeps it with its owner
    stale_runner = first.runners[session.id]
    stale_vault = first.vault(stale_runner)

    # The first worker freezes (its renewals stop); its lease expires and the second takes over.
    for task in list(first._loops):
        task.cancel()
    await eventually(lambda: _runs(second, session), "the second worker to take over", timeout=10)
    await status_of(gateway, session, Status.WORKING)
    lease = await gateway.store.leases.get(session.id)
    assert lease is not None
    assert lease.epoch > stale_runner.lease.epoch
    with pytest.raises(LeaseLost):
        await stale_vault.put_many({("creds", "device"): b"stale write"})
    # The stale owner was replaced at the simulator: it ends without writing, the new owner keeps WORKING.
    await asyncio.sleep(0.3)
    current = await gateway.store.sessions.get(session.tenant_id, session.name)
    assert current is not None
    assert current.status is Status.WORKING
    await first.stop()
    await second.stop()


async def _runs(supervisor: Supervisor, session: Session) -> bool:
    return session.id in supervisor.runners


async def test_logout_and_conflict_through_the_supervisor(gateway: Gateway, sim: Sim, session: Session) -> None:
    supervisor = supervisor_for(gateway, sim)
    await supervisor.start()
    await link(gateway, sim, supervisor, session)
    await supervisor.logout(session)
    await status_of(gateway, session, Status.SCAN_QR_CODE)  # running, so it starts over with a new QR code
    assert not sim.server.describe(PHONE)["paired"]
    await supervisor.stop()


async def test_unknown_engine_configuration_fails_clearly(gateway: Gateway, session: Session, tmp_path: Path) -> None:
    settings = make_settings(tmp_path).with_overrides(worker_id="w")
    gw = Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock)
    supervisor = Supervisor(gw, EngineRegistry(settings))  # no simulator configured
    await supervisor.start()
    failed = await status_of(gateway, session, Status.FAILED)
    assert failed.reason is Reason.ENGINE_ERROR
    assert failed.note is not None
    assert "WAGATE_SIM_URL" in failed.note
    await supervisor.stop()


async def test_a_session_launched_during_a_reconcile_keeps_its_runner(gateway: Gateway, sim: Sim) -> None:
    supervisor = supervisor_for(gateway, sim)
    await supervisor.start()
    tenant = await gateway.store.tenants.create("race", contact_email=None, max_sessions=None)
    # A full reconcile starts while reconcile_one holds the lock for a session created a moment later.
    await supervisor._lock.acquire()
    full = asyncio.create_task(supervisor.reconcile())
    await asyncio.sleep(0.1)  # the full reconcile is now waiting for the lock
    session = await gateway.store.sessions.create(
        NewSession(tenant.id, "late", "sim", {}, Desired.RUNNING), quotas=Quotas(5, 100), actor="test"
    )
    await supervisor._apply([session])  # what reconcile_one does under the lock
    runner = supervisor.runners[session.id]
    supervisor._lock.release()
    await full
    await status_of(gateway, session, Status.SCAN_QR_CODE)
    await asyncio.sleep(0.3)
    assert supervisor.runners.get(session.id) is runner
    assert runner.task is not None
    assert not runner.task.done()
    await supervisor.stop()

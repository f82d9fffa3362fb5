"""Engines in engine host processes, driven by a real supervisor over each store backend: sim sessions against a real
simulator on loopback, neonize sessions against a network without WhatsApp. The hosts are real child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import TEST_KEK
from tests.support.engines import fds, fill_pools, rss_kib, whatsapp_resolves
from tests.support.supervision import Sim, eventually, sim, status_of
from wagate.domain.sessions import Desired, HistoryKind, NewSession, Quotas, Session, Status
from wagate.engines.host import pool as host_pool
from wagate.engines.host.pool import HostPool
from wagate.engines.host.process import EngineHost
from wagate.engines.registry import EngineRegistry
from wagate.gateway import Gateway
from wagate.ids import SessionId
from wagate.supervisor.supervisor import Supervisor

__all__ = ["sim"]  # the simulator fixture, served on loopback

pytestmark = pytest.mark.e2e

FAST = {
    "worker_id": "w1",
    "lease_ttl": 2.0,
    "reconcile_interval": 0.2,
    "backoff_base": 0.05,
    "backoff_cap": 0.4,
    "breaker_threshold": 50,
    "max_attempts": 100,
}


@pytest.fixture
async def supervisors() -> AsyncIterator[list[Supervisor]]:
    made: list[Supervisor] = []
    yield made
    for supervisor in made:
        await supervisor.stop()


def hosted(gateway: Gateway, supervisors: list[Supervisor], sim_url: str | None = None, **overrides: Any) -> Supervisor:
    settings = gateway.settings.with_overrides(**{"hosted_engines": "sim", **FAST, **overrides})
    gw = Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock)
    supervisor = Supervisor(gw, EngineRegistry(settings, sim_url=sim_url), rng=random.Random(7))
    supervisors.append(supervisor)
    return supervisor


def pool_of(supervisor: Supervisor, engine: str = "sim") -> HostPool:
    return supervisor.engines.pools()[engine]


def host_of(supervisor: Supervisor, session: Session) -> EngineHost:
    for host in pool_of(supervisor).hosts:
        if any(c.session_id == session.id for c in host.connections.values()):
            return host
    raise AssertionError(f"{session.name} runs on no host")


async def new_session(gateway: Gateway, name: str, engine: str = "sim") -> Session:
    tenants = await gateway.store.tenants.list_all()
    tenant = tenants[0] if tenants else await gateway.store.tenants.create("t", contact_email=None, max_sessions=None)
    return await gateway.store.sessions.create(
        NewSession(tenant.id, name, engine, {}, Desired.RUNNING), quotas=Quotas(50, 100), actor="test"
    )


async def link(gateway: Gateway, sim: Sim, supervisor: Supervisor, session: Session, phone: str) -> None:
    await status_of(gateway, session, Status.SCAN_QR_CODE)
    qr = supervisor.qr(session.id)
    assert qr is not None
    await sim.post("/phone/scan", {"phone": phone, "qr": qr.code})
    await status_of(gateway, session, Status.WORKING)


async def statuses(gateway: Gateway, session: Session) -> list[str]:
    history = await gateway.store.sessions.history(session.tenant_id, session.id, limit=500)
    return [h.to_status.value for h in reversed(history) if h.kind is HistoryKind.STATUS and h.to_status]


async def stored_once(gateway: Gateway, session: Session, expected: set[str]) -> None:
    """Every expected message is stored exactly once, with exactly one ``message`` event."""
    stored: list[str] = []
    cursor = None
    while page := await gateway.store.messages.list_messages(
        session.tenant_id, session.id, chat_id=None, cursor=cursor, newest_first=False, limit=500
    ):
        stored += [m.id for m in page]
        cursor = (page[-1].timestamp, page[-1].seq)
    events: list[str] = []
    after = None
    while batch := await gateway.store.events.list_events(
        session.tenant_id, session_id=session.id, types=["message"], after=after, limit=500
    ):
        events += [e.payload["_data"]["id"] for e in batch]  # WhatsApp's id (``id`` is WAHA's serialized one)
        after = batch[-1].id
    assert len(stored) == len(set(stored))
    assert set(stored) == expected
    assert len(events) == len(set(events))
    assert set(events) == expected


def running(pid: int | None) -> bool:
    return pid is not None and Path(f"/proc/{pid}").exists()


def proc_file(pid: int | None, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


async def inject(sim: Sim, phone: str, count: int) -> set[str]:
    """``count`` messages to ``phone``; their ids."""
    answer = await sim.post(f"/devices/{phone}/messages", {"from": "+15550100", "text": "m", "count": count})
    ids = answer["ids"]
    assert isinstance(ids, list)
    return {str(i) for i in ids}


@contextlib.asynccontextmanager
async def traffic(sim: Sim, sent: dict[str, set[str]]) -> AsyncIterator[None]:
    """Messages to each phone in ``sent`` (their ids added to it), five every 50 ms, until the block ends."""

    done = asyncio.Event()

    async def flow() -> None:
        while not done.is_set():
            for phone, ids in sent.items():
                ids.update(await inject(sim, phone, 5))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)

    task = asyncio.create_task(flow())
    try:
        yield
    finally:
        done.set()
        await task  # to its end: every message the simulator took is counted
    assert all(sent.values()), "no traffic"


def acked(sim: Sim, phone: str, count: int) -> Any:
    async def check() -> bool:
        device = sim.server.describe(phone)
        return bool(device["messages_acked"] >= count and device["pending"] == 0)

    return check


async def test_sessions_that_start_together_start_their_hosts_together(
    gateway: Gateway, sim: Sim, supervisors: list[Supervisor]
) -> None:
    """After a restart, many sessions want a host at once: hosts start side by side, not one after the other."""
    supervisor = hosted(gateway, supervisors, sim.url, host_sessions=1)
    sessions = [await new_session(gateway, name) for name in ("a", "b", "c")]
    await supervisor.start()
    for session in sessions:
        await status_of(gateway, session, Status.SCAN_QR_CODE)
    hosts = pool_of(supervisor).hosts
    assert len(hosts) == 3
    assert sorted(len(host) for host in hosts) == [1, 1, 1]
    ready = [host.ready_at for host in hosts]
    assert None not in ready
    assert max(host.started_at for host in hosts) < min(t for t in ready if t is not None)


async def test_a_host_that_stops_answering_is_killed_and_its_sessions_move(
    gateway: Gateway, sim: Sim, supervisors: list[Supervisor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host frozen (SIGSTOP here; a deadlock in native code alike) answers no ping: it is killed after
    ``HUNG_AFTER`` seconds of silence, and its session reconnects on a new host; an idle host that answers stays."""
    monkeypatch.setattr(host_pool, "PING_AFTER", 0.3)
    monkeypatch.setattr(host_pool, "HUNG_AFTER", 2.0)
    supervisor = hosted(gateway, supervisors, sim.url, host_sessions=1)
    first, second = await new_session(gateway, "a"), await new_session(gateway, "b")
    await supervisor.start()
    await link(gateway, sim, supervisor, first, "+15550001")
    await link(gateway, sim, supervisor, second, "+15550002")
    frozen, idle = host_of(supervisor, first), host_of(supervisor, second)
    assert frozen.pid is not None
    os.kill(frozen.pid, signal.SIGSTOP)
    assert await asyncio.wait_for(frozen.gone(), 10) == "was killed by SIGKILL"
    await eventually(lambda: _on_a_new_host(supervisor, first, frozen), "the session on a new host")
    await status_of(gateway, first, Status.WORKING)
    assert idle.live  # silent as long, but it answered every ping
    assert host_of(supervisor, second) is idle
    assert pool_of(supervisor).crashed == 1


async def _on_a_new_host(supervisor: Supervisor, session: Session, old: EngineHost) -> bool:
    try:
        return host_of(supervisor, session) is not old
    except AssertionError:
        return False


async def test_a_retired_host_keeps_its_sessions_and_stops_when_the_last_one_ends(
    gateway: Gateway, sim: Sim, supervisors: list[Supervisor]
) -> None:
    """Recycling costs no session a reconnect: a host past its limit takes no new session, keeps the ones it runs
    (they stay WORKING, with no status change) and exits once they have ended."""
    supervisor = hosted(gateway, supervisors, sim.url, host_recycle_starts=2, host_drain_after=0)
    first, second = await new_session(gateway, "a"), await new_session(gateway, "b")
    await supervisor.start()
    await link(gateway, sim, supervisor, first, "+15550001")
    await link(gateway, sim, supervisor, second, "+15550002")
    old = host_of(supervisor, first)
    assert host_of(supervisor, second) is old
    assert old.retiring_since is not None  # two sessions opened there: its limit
    third = await new_session(gateway, "c")
    await supervisor.reconcile_one(third.tenant_id, third.id)
    await link(gateway, sim, supervisor, third, "+15550003")
    assert host_of(supervisor, third) is not old

    ids = await inject(sim, "+15550001", 40)
    await eventually(acked(sim, "+15550001", 40), "the first session's messages")
    await stored_once(gateway, first, ids)
    for session in (first, second):
        assert await statuses(gateway, session) == ["STARTING", "SCAN_QR_CODE", "STARTING", "WORKING"]

    pid = old.pid
    assert pid is not None
    for session in (first, second):
        await gateway.store.sessions.set_desired(session.tenant_id, session.name, Desired.STOPPED, actor="test")
        await supervisor.reconcile_one(session.tenant_id, session.id)
        await status_of(gateway, session, Status.STOPPED)
    assert await asyncio.wait_for(old.gone(), 10) == "exited"
    assert not running(pid)
    pool = pool_of(supervisor)
    assert (pool.recycled, pool.crashed, len(pool.hosts)) == (1, 0, 1)
    await status_of(gateway, third, Status.WORKING)


async def test_a_draining_host_moves_its_sessions_one_by_one_and_loses_no_message(
    gateway: Gateway, sim: Sim, supervisors: list[Supervisor]
) -> None:
    """Past its limit for ``host_drain_after`` seconds, a host's sessions are closed gracefully one a second and
    reconnect on another host, while messages keep arriving: each is stored once, and the old host exits."""
    supervisor = hosted(gateway, supervisors, sim.url, host_recycle_starts=3, host_drain_after=0.5)
    first, second = await new_session(gateway, "a"), await new_session(gateway, "b")
    await supervisor.start()
    await link(gateway, sim, supervisor, first, "+15550001")
    await link(gateway, sim, supervisor, second, "+15550002")
    old = host_of(supervisor, first)
    await sim.post("/devices/+15550001/faults", {"kind": "drop"})  # the first reconnects: a third start there
    await eventually(lambda: _retiring(old), "the host to retire")

    sent: dict[str, set[str]] = {"+15550001": set(), "+15550002": set()}
    async with traffic(sim, sent):
        assert await asyncio.wait_for(old.gone(), 15) == "exited"
    for phone, ids in sent.items():
        await eventually(acked(sim, phone, len(ids)), f"{phone}'s messages", timeout=15)
    await stored_once(gateway, first, sent["+15550001"])
    await stored_once(gateway, second, sent["+15550002"])
    for session in (first, second):
        await status_of(gateway, session, Status.WORKING)
        assert host_of(supervisor, session) is not old
    # Each was moved once, gracefully (the first also reconnected once after its drop, before the drain).
    assert (await statuses(gateway, second))[3:] == ["WORKING", "STARTING", "WORKING"]
    assert (await statuses(gateway, first))[3:] == ["WORKING", "STARTING", "WORKING", "STARTING", "WORKING"]
    assert sim.server.describe("+15550001")["decrypt_failures"] == 0
    pool = pool_of(supervisor)
    assert (pool.recycled, pool.crashed, len(pool.hosts)) == (1, 0, 1)


async def _retiring(host: EngineHost) -> bool:
    return host.retiring_since is not None


async def test_a_connect_cut_off_by_its_timeout_is_cancelled_inside_the_host(
    gateway: Gateway, sim: Sim, supervisors: list[Supervisor]
) -> None:
    """The runner's connect timeout cancels the call in the host too (nothing of the attempt stays there), and the
    next attempt connects."""
    # The timeout bounds a host's start too: 4 s lets one start on a busy machine, and the fault outlasts it.
    supervisor = hosted(gateway, supervisors, sim.url, connect_timeout=4.0)
    session = await new_session(gateway, "a")
    await supervisor.start()
    await link(gateway, sim, supervisor, session, "+15550001")
    await sim.post("/devices/+15550001/faults", {"kind": "slow", "delay": 6, "duration": 4})
    await sim.post("/devices/+15550001/faults", {"kind": "drop"})
    await eventually(lambda: _note_has(gateway, session, "timed out"), "a connect to time out", timeout=15)
    host = pool_of(supervisor).hosts[0]
    await status_of(gateway, session, Status.WORKING)
    assert (await host.stats())["connections"] == 1  # the live one: nothing left of the attempts cut off
    assert pool_of(supervisor).hosts == [host]


async def _note_has(gateway: Gateway, session: Session, words: str) -> bool:
    current = await gateway.store.sessions.get(session.tenant_id, session.name)
    return current is not None and words in (current.note or "")


async def test_a_host_gets_none_of_the_gateways_secrets(
    gateway: Gateway, sim: Sim, supervisors: list[Supervisor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys, the admin key and the database stay in the gateway: not in the host's environment, its command line
    or its open files; what it knows of a session's state it asked for, record by record."""
    monkeypatch.setenv("WAGATE_KEYS", TEST_KEK)  # as a gateway configured by its environment has them
    monkeypatch.setenv("WAGATE_ADMIN_KEY", "an-admin-key-never-to-leave")
    supervisor = hosted(gateway, supervisors, sim.url)
    session = await new_session(gateway, "a")
    await supervisor.start()
    await link(gateway, sim, supervisor, session, "+15550001")
    pid = host_of(supervisor, session).pid
    environ = proc_file(pid, "environ")
    cmdline = proc_file(pid, "cmdline")
    secret = TEST_KEK.split(":", 1)[1].encode()
    for text in (environ, cmdline):
        assert b"WAGATE_" not in text
        assert secret not in text
        assert b"an-admin-key-never-to-leave" not in text
    # Besides the standard streams it shares with the gateway: no file (the database, the key file), only its
    # sockets and its loop's own descriptors.
    opened = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd") if int(fd) > 2}
    assert not [path for path in opened if path.startswith("/") and path != "/dev/null"], opened


# -- neonize, without WhatsApp -------------------------------------------------------------------------------


async def attempts(supervisor: Supervisor, session_id: SessionId, count: int) -> None:
    async with asyncio.timeout(90):
        while (runner := supervisor.runners.get(session_id)) is None or runner.attempt < count:
            await asyncio.sleep(0.01)


async def test_neonize_in_a_host_offline_fails_cleanly_and_the_host_survives(
    gateway: Gateway, supervisors: list[Supervisor]
) -> None:
    """Offline, a neonize session in a host keeps retrying with the reason in its note; the host stays the same
    process, keeps nothing of the attempts, and the gateway's process does not grow."""
    supervisor = hosted(
        gateway,
        supervisors,
        hosted_engines="neonize",
        backoff_base=0.002,
        backoff_cap=0.05,
        breaker_threshold=100_000,
        max_attempts=100_000,
    )
    session = await new_session(gateway, "phone", engine="neonize")
    await supervisor.start()
    await attempts(supervisor, session.id, 20)  # warmed up: the host started, caches and threads in place
    await fill_pools(gateway)
    pool = pool_of(supervisor, "neonize")
    (host,) = pool.hosts
    fds_before, rss_before = await fds(), rss_kib()
    await attempts(supervisor, session.id, 150)
    fds_after, rss_after = await fds(), rss_kib()
    stats = await host.stats()

    current = await gateway.store.sessions.get(session.tenant_id, session.name)
    assert current is not None
    assert current.status is Status.STARTING
    assert (current.note or "").startswith("network unreachable: cannot resolve web.whatsapp.invalid")
    assert pool.hosts == [host]
    assert (pool.started, pool.crashed) == (1, 0)
    assert stats["connections"] <= 1  # the attempt in progress, if any
    assert stats["engine"]["unreachable"] >= 150
    assert stats["engine"]["starts"] == 0
    assert len(host) <= 1
    assert abs(fds_after - fds_before) <= 2, (fds_before, fds_after)
    assert rss_after - rss_before < 4 * 1024, (rss_before, rss_after)
    assert len(pool.tasks) <= 3  # its check loop, and what a connection in progress needs


@pytest.mark.skipif(whatsapp_resolves(), reason="this machine reaches WhatsApp; neonize's offline failure needs none")
async def test_neonize_starts_that_fail_leak_in_hosts_that_are_recycled(
    gateway: Gateway, supervisors: list[Supervisor]
) -> None:
    """Each start that fails inside whatsmeow leaks its database connection in the process that made it: in a
    host, which takes no new session after ``host_recycle_starts`` and exits; the gateway's process leaks nothing."""
    supervisor = hosted(
        gateway,
        supervisors,
        hosted_engines="neonize",
        neonize_probe="",  # straight to whatsmeow's dial, which fails offline
        host_recycle_starts=3,
        host_drain_after=0,
        breaker_threshold=100_000,
        max_attempts=100_000,
    )
    session = await new_session(gateway, "phone", engine="neonize")
    await supervisor.start()
    await attempts(supervisor, session.id, 8)
    pool = pool_of(supervisor, "neonize")
    current = await gateway.store.sessions.get(session.tenant_id, session.name)
    assert current is not None
    assert (current.note or "").startswith("network unreachable: failed to dial whatsapp web websocket")
    assert pool.started >= 3
    assert pool.recycled >= 2
    assert pool.crashed == 0
    assert len(pool.hosts) <= 2  # the one in use, and one that just retired


async def test_stopping_the_gateway_stops_its_hosts(gateway: Gateway, sim: Sim) -> None:
    made: list[Supervisor] = []
    supervisor = hosted(gateway, made, sim.url)
    session = await new_session(gateway, "a")
    await supervisor.start()
    await link(gateway, sim, supervisor, session, "+15550001")
    host, pool = host_of(supervisor, session), pool_of(supervisor)
    started = time.monotonic()
    await supervisor.stop()
    assert host.exit == "exited"  # told to, after its sessions were closed: no crash
    assert time.monotonic() - started < 5
    assert not running(host.pid)
    assert (pool.crashed, pool.hosts) == (0, [])

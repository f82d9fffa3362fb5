"""The supervisor and the sim engine over each store backend, with a real simulator on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import make_settings
from tests.support.mailbox import Mailbox
from tests.support.procs import free_port
from tests.support.supervision import PHONE, Sim, eventually, link, status_of, supervisor_for
from wagate.clock import Clock
from wagate.domain.messages import MessageKind, NewOutbound, new_message_id
from wagate.domain.sessions import Desired, NewSession, Quotas, Reason, Session, Status, StatusChange
from wagate.domain.tenants import Tenant
from wagate.engines.registry import EngineRegistry
from wagate.errors import LeaseLost, StoreUnavailable
from wagate.gateway import Gateway
from wagate.periodic import to_end
from wagate.supervisor.commands import Command
from wagate.supervisor.supervisor import Supervisor


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


async def test_message_frames_that_wait_are_handled_as_one_batch(gateway: Gateway, sim: Sim, session: Session) -> None:
    """One message per frame (as WhatsApp sends them): while the first one commits, the rest arrive and wait; they
    are then committed and acknowledged together, in order, not one transaction each."""
    sim.server.options.batch = 1
    supervisor = supervisor_for(gateway, sim)
    await supervisor.start()
    await link(gateway, sim, supervisor, session)
    sizes: list[int] = []
    release = asyncio.Event()
    append = supervisor.recorder.append

    async def observed(events: Any, inbound: Any = (), auth: Any = None) -> None:
        sizes.append(len(inbound))
        if len(sizes) == 1:
            await release.wait()
        await append(events, inbound, auth)

    supervisor.recorder.append = observed  # type: ignore[method-assign]
    texts = [f"one by one #{n}" for n in range(1, 41)]
    await sim.post(f"/devices/{PHONE}/messages", {"from": "+15550002", "text": texts[0], "count": 1})

    async def first_waits() -> bool:
        return sizes == [1]

    await eventually(first_waits, "the first message's commit")
    for text in texts[1:]:
        await sim.post(f"/devices/{PHONE}/messages", {"from": "+15550002", "text": text, "count": 1})

    async def all_sent() -> bool:
        return bool(sim.server.describe(PHONE)["messages_delivered"] >= 40)

    await eventually(all_sent, "40 frames sent")
    await asyncio.sleep(0.3)  # on loopback: they reach the gateway's socket while the first commit waits
    release.set()
    await eventually(lambda: _acked(sim, 40), "40 acks")
    assert sizes == [1, 39]
    assert sim.server.describe(PHONE)["decrypt_failures"] == 0  # the chain verified every message in order
    received = await gateway.store.events.list_events(session.tenant_id, types=["message"], limit=100)
    assert [e.payload["body"] for e in received] == texts
    await supervisor.stop()


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


async def running_sessions(gateway: Gateway, tenant_name: str, count: int) -> tuple[Tenant, list[Session]]:
    """A tenant with ``count`` sessions that should run."""
    tenant = await gateway.store.tenants.create(tenant_name, contact_email=None, max_sessions=None)
    made = [
        await gateway.store.sessions.create(
            NewSession(tenant.id, f"{tenant_name}{n}", "sim", {}, Desired.RUNNING), quotas=Quotas(10, 100), actor="test"
        )
        for n in range(count)
    ]
    return tenant, made


async def test_sessions_spread_over_the_live_workers(gateway: Gateway, sim: Sim) -> None:
    tenant, sessions = await running_sessions(gateway, "spread", 7)
    phones = {s.id: f"+1555010{n}" for n, s in enumerate(sessions)}
    first = supervisor_for(gateway, sim, "w1")
    await first.start()
    for session in sessions:
        await link(gateway, sim, first, session, phones[session.id])
    assert len(first.runners) == 7  # alone, a worker runs everything
    await sim.post(f"/devices/{phones[sessions[0].id]}/messages", {"from": "+15550002", "text": "a", "count": 5})

    async def spread(counts: tuple[int, ...], *workers: Supervisor) -> bool:
        """Each session runs on exactly one of ``workers``, which run ``counts`` sessions (in some order)."""
        return sorted(len(w.runners) for w in workers) == sorted(counts) and all(
            sum(s.id in w.runners for w in workers) == 1 for s in sessions
        )

    second = supervisor_for(gateway, sim, "w2")
    await second.start()
    await eventually(lambda: spread((4, 3), first, second), "four and three sessions", timeout=15)
    for session in sessions:
        await status_of(gateway, session, Status.WORKING)  # moved ones reconnected without a new scan
    assert (first.stats.handovers, second.stats.handovers) == (3, 0)
    assert (first.share, second.share) == (4, 4)
    await asyncio.sleep(1.0)  # several reconcile rounds: nothing moves back and forth
    assert await spread((4, 3), first, second)
    assert (first.stats.handovers, second.stats.handovers) == (3, 0)

    third = supervisor_for(gateway, sim, "w3")
    await third.start()
    await eventually(lambda: spread((3, 2, 2), first, second, third), "three, two and two", timeout=15)
    assert first.stats.handovers + second.stats.handovers == 5  # the two the third lacked, from the two above the floor
    assert third.stats.handovers == 0

    await second.stop()  # its sessions are released; the two left take them, each up to its share
    await eventually(lambda: spread((4, 3), first, third), "four and three again", timeout=15)
    for session in sessions:
        await status_of(gateway, session, Status.WORKING)
    await sim.post(f"/devices/{phones[sessions[0].id]}/messages", {"from": "+15550002", "text": "b", "count": 5})

    async def acked() -> bool:
        return bool(sim.server.describe(phones[sessions[0].id])["messages_acked"] == 10)

    await eventually(acked, "the messages sent after the moves")
    for phone in phones.values():
        assert sim.server.describe(phone)["decrypt_failures"] == 0
    received = await gateway.store.events.list_events(tenant.id, types=["message"], limit=100)
    assert sorted(e.payload["body"] for e in received) == sorted(f"{t} #{n}" for t in "ab" for n in range(1, 6))
    await first.stop()
    await third.stop()


async def test_workers_starting_together_share_without_handing_over(gateway: Gateway, sim: Sim) -> None:
    _, sessions = await running_sessions(gateway, "together", 6)
    first = supervisor_for(gateway, sim, "w1")
    await first.start()
    for n, session in enumerate(sessions):
        await link(gateway, sim, first, session, f"+1555030{n}")
    await first.stop()  # the whole installation stops; then two workers start at once
    second, third = supervisor_for(gateway, sim, "w2"), supervisor_for(gateway, sim, "w3")
    await asyncio.gather(second.start(), third.start())
    assert (len(second.runners), len(third.runners)) == (3, 3)  # each its share from the first claim
    for session in sessions:
        await status_of(gateway, session, Status.WORKING)
    await asyncio.sleep(0.5)
    assert (second.stats.handovers, third.stats.handovers) == (0, 0)
    await second.stop()
    await third.stop()


async def test_a_worker_that_stops_claiming_loses_its_share(gateway: Gateway, sim: Sim) -> None:
    await running_sessions(gateway, "share", 4)
    first = supervisor_for(gateway, sim, "w1")
    second = supervisor_for(gateway, sim, "w2")
    await first.start()
    await second.start()
    assert len(first.runners) == 4  # the first to start took them all
    await asyncio.sleep(1.0)  # several rounds: sessions waiting for a scan keep their QR codes where they are
    assert (len(first.runners), len(second.runners), first.stats.handovers) == (4, 0, 0)
    assert second.share == 2
    # The first worker's reconciles stop (its leases too): it is no longer counted, and the second takes all.
    for task in list(first._loops):
        task.cancel()

    async def second_runs_all() -> bool:
        return len(second.runners) == 4

    await eventually(second_runs_all, "the second worker to run all four", timeout=15)
    assert second.workers.keys() == {second.owner}
    assert second.share == 4
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


async def test_a_logout_right_after_a_stop_is_not_lost(gateway: Gateway, sim: Sim, session: Session) -> None:
    """Logging out a session whose runner is still winding down from a stop: the runner would drop the weaker
    command, so the logout waits for it to end and is carried out for the stopped session."""
    supervisor = supervisor_for(gateway, sim)
    await supervisor.start()
    await link(gateway, sim, supervisor, session)
    await gateway.store.sessions.set_desired(session.tenant_id, session.name, Desired.STOPPED, actor="t")
    runner = supervisor.runners[session.id]
    runner.command(Command.STOP)  # as the reconcile tells it; the runner has not ended yet
    assert runner.winding_down()
    await supervisor.logout(session)
    stopped = await status_of(gateway, session, Status.STOPPED)
    assert stopped.me is None  # logged out: no account any more
    assert await gateway.store.auth.read_all(session.tenant_id, session.id) == []  # its credentials wiped
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


async def test_a_loop_cancelled_in_a_write_lets_it_end(gateway: Gateway) -> None:
    """Cut off half-way, an aiosqlite write transaction kept SQLite's write lock: every later write failed with
    "database is locked". A supervisor's periodic job therefore ends before its loop's cancellation does."""
    finished: list[int] = []
    release = asyncio.Event()

    async def job() -> None:
        await release.wait()
        finished.append(1)

    waiting = asyncio.create_task(to_end(job))
    await asyncio.sleep(0.05)
    waiting.cancel()
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the job is still running: the cancellation waits for it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert finished == [1]

    rng = random.Random(3)
    for _ in range(40):  # writes cancelled at random points, as a stop does to the reconcile loop
        loop = asyncio.create_task(_beat_forever(gateway))
        await asyncio.sleep(rng.random() * 0.01)
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        async with asyncio.timeout(5):
            assert "after#1" in await gateway.store.workers.beat("after#1", 30)


async def _beat_forever(gateway: Gateway) -> None:
    while True:
        await to_end(lambda: gateway.store.workers.beat("loop#1", 30))


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


class StepClock:
    """A clock that follows real time plus whatever the test adds (hours of idleness in no time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def monitored(gateway: Gateway, sim: Sim, clock: Clock | None = None, **settings: object) -> Supervisor:
    values: dict[str, object] = {"worker_id": "w1", "lease_ttl": 2.0, "reconcile_interval": 0.2}
    values.update(settings)
    changed = gateway.settings.with_overrides(**values)
    gw = Gateway(changed, gateway.store, gateway.keyring, gateway.vaults, clock or gateway.clock)
    return Supervisor(gw, EngineRegistry(changed, sim_url=sim.url), rng=random.Random(7))


async def test_the_monitor_reconnects_a_session_stuck_in_starting(gateway: Gateway, sim: Sim, session: Session) -> None:
    supervisor = monitored(
        gateway,
        sim,
        health_interval=0.1,
        stuck_timeout=0.5,
        connect_timeout=60,
        backoff_base=0.05,
        backoff_cap=0.2,
        breaker_threshold=50,
    )
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)
        await sim.post(f"/devices/{PHONE}/faults", {"kind": "slow", "delay": 3, "duration": 2})
        await sim.post(f"/devices/{PHONE}/faults", {"kind": "drop"})

        async def kicked() -> bool:
            current = await gateway.store.sessions.get(session.tenant_id, session.name)
            return current is not None and "stuck in STARTING" in (current.note or "")

        await eventually(kicked, "the monitor to reconnect the stuck session", timeout=10)
        assert supervisor.stats.stuck_restarts >= 1
        await status_of(gateway, session, Status.WORKING)  # the slow spell over, it connects
    finally:
        await supervisor.stop()


async def test_idle_stop_on_an_injected_clock_only_for_sessions_that_opt_in(gateway: Gateway, sim: Sim) -> None:
    tenant = await gateway.store.tenants.create("t", contact_email=None, max_sessions=None)
    lazy = await gateway.store.sessions.create(
        NewSession(tenant.id, "lazy", "sim", {"idle_stop": True}, Desired.RUNNING), quotas=Quotas(5, 100), actor="t"
    )
    clock = StepClock()
    supervisor = monitored(gateway, sim, clock, health_interval=3600, idle_timeout=86400)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, lazy)
        await supervisor.check_health()
        assert (await status_of(gateway, lazy, Status.WORKING)).desired is Desired.RUNNING  # not idle yet
        clock.offset += 86400 + 1
        await supervisor.check_health()
        stopped = await status_of(gateway, lazy, Status.STOPPED)
        assert (stopped.reason, stopped.desired) == (Reason.IDLE, Desired.STOPPED)
        assert supervisor.stats.idle_stops == 1
    finally:
        await supervisor.stop()


async def test_scheduled_backups_rotate(gateway: Gateway, sim: Sim, session: Session) -> None:
    supervisor = monitored(gateway, sim, health_interval=0.05, backup_interval=0.2, backups_keep=3)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)

        async def rotated() -> bool:
            return supervisor.stats.backups_taken >= 5

        await eventually(rotated, "five scheduled backups", timeout=10)
        kept = await gateway.store.backups.list_backups(session.tenant_id, session.id)
        assert len(kept) == 3
        assert {b.reason for b in kept} == {"scheduled"}
    finally:
        await supervisor.stop()


async def test_failures_email_the_tenant_once_per_interval(gateway: Gateway, sim: Sim) -> None:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    tenant = await gateway.store.tenants.create("acme", contact_email="ops@acme.test", max_sessions=None)
    main = await gateway.store.sessions.create(
        NewSession(tenant.id, "main", "sim", {}, Desired.RUNNING), quotas=Quotas(5, 100), actor="t"
    )
    supervisor = monitored(
        gateway, sim, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, notify_interval=3600
    )
    await supervisor.start()
    try:
        for round_ in range(2):
            await link(gateway, sim, supervisor, main)
            await sim.post(f"/devices/{PHONE}/faults", {"kind": "logout"})
            await status_of(gateway, main, Status.FAILED)
            await supervisor.notifier.drain()
            if round_ == 0:
                await gateway.store.sessions.set_desired(tenant.id, "main", Desired.RUNNING, actor="t", restart=True)
                await supervisor.reconcile_one(tenant.id, main.id)
        assert len(mailbox.messages) == 1  # the second failure came within the interval
        (mail,) = mailbox.messages
        assert mail["To"] == "ops@acme.test"
        assert "'main'" in mail["Subject"]
        assert "logged_out" in mail["Subject"]
    finally:
        await supervisor.stop()
        controller.stop()


async def test_the_monitor_reconnects_a_working_session_whose_engine_died(
    gateway: Gateway, sim: Sim, session: Session
) -> None:
    supervisor = monitored(gateway, sim, health_interval=0.1, backoff_base=0.05, backoff_cap=0.2)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)
        runner = supervisor.runners[session.id]

        async def working() -> bool:  # the row says WORKING once committed, before the runner has heard so back
            return runner.status is Status.WORKING

        # The engine's reader is what delivers Connected: cut off before the runner has taken it, it would leave
        # the runner STARTING (then only the STARTING timeout applies), which is not this test's case.
        await eventually(working, "the runner to take the session as WORKING")
        connection = runner.conn
        assert connection is not None
        assert connection.alive()
        reader = connection._reader  # type: ignore[attr-defined]
        reader.cancel()  # the engine's reader dies without reporting anything
        await eventually(lambda: _stuck_restarted(supervisor), "the monitor to notice the dead engine")

        async def replaced() -> bool:
            current = runner.conn
            return current is not None and current is not connection and current.alive()

        await eventually(replaced, "a new, live engine connection")
        await status_of(gateway, session, Status.WORKING)
    finally:
        await supervisor.stop()


async def _stuck_restarted(supervisor: Supervisor) -> bool:
    return supervisor.stats.stuck_restarts >= 1


async def test_the_monitor_leaves_alone_a_session_that_progresses_or_waits_its_turn(
    gateway: Gateway, sim: Sim, session: Session
) -> None:
    """Found at 10,000 sessions: a session paired while its status write was queued, and sessions queued for a
    connection slot, were taken for stuck."""
    from wagate.domain.sessions import Lease
    from wagate.engines.base import Me, Paired
    from wagate.supervisor.runner import SessionRunner

    clock = StepClock()
    supervisor = monitored(gateway, sim, clock, stuck_timeout=120, connect_concurrency=1)
    engine = supervisor.engines.get("sim")
    runner = SessionRunner(supervisor.context, session, Lease(session.id, "w1#x", 1, clock() + 60), engine)
    runner.status = Status.SCAN_QR_CODE
    clock.offset += 200
    assert runner.stuck(clock(), 120) is not None  # no QR code for 200 s: stuck
    # Paired: progress, even while its status write waits in the recorder (not started here, so it never lands).
    pairing = asyncio.create_task(runner._on_event(Paired(Me(id="x", phone="+15550001", push_name=None))))
    await asyncio.sleep(0.05)
    assert runner.status is Status.SCAN_QR_CODE
    assert runner.stuck(clock(), 120) is None
    pairing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pairing
    runner._awaiting_slot = True
    runner.status = Status.STARTING
    clock.offset += 500
    assert runner.stuck(clock(), 120) is None  # queued for a connection slot: not stuck


async def test_sessions_started_together_send_what_was_queued_before_and_after(gateway: Gateway, sim: Sim) -> None:
    """Sessions started together learn from one query which of them have something to send; the others' senders
    wait, and a message queued later through this worker reaches the sender at once (not at the next poll)."""
    tenant = await gateway.store.tenants.create("t", contact_email=None, max_sessions=None)
    phones = {"a": "+15550001", "b": "+15550003", "c": "+15550004"}
    sessions = {
        name: await gateway.store.sessions.create(
            NewSession(tenant.id, name, "sim", {}, Desired.RUNNING), quotas=Quotas(5, 100), actor="test"
        )
        for name in phones
    }
    settings = gateway.settings.with_overrides(send_poll_interval=3600.0)
    gw = Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock)

    def supervisor() -> Supervisor:
        return Supervisor(gw, EngineRegistry(settings, sim_url=sim.url), rng=random.Random(7))

    first = supervisor()
    await first.start()
    for name, phone in phones.items():
        await status_of(gateway, sessions[name], Status.SCAN_QR_CODE)
        qr = first.qr(sessions[name].id)
        assert qr is not None
        await sim.post("/phone/scan", {"phone": phone, "qr": qr.code})
    for session in sessions.values():
        await status_of(gateway, session, Status.WORKING)
    await first.stop()

    async def queue(session: Session, text: str) -> None:
        message_id = new_message_id()
        body = await first.bodies.seal_body(tenant.id, session.id, message_id, {"text": text})
        new = NewOutbound(tenant.id, session.id, message_id, "15550009@s.whatsapp.net", "", MessageKind.TEXT, body)
        await gateway.store.messages.enqueue(new, max_queued=100)

    def sent_texts(phone: str) -> list[str]:
        return [str(m.get("text")) for m in sim.server.device(phone).sent]

    await queue(sessions["b"], "queued-while-stopped")
    second = supervisor()
    await second.start()
    for session in sessions.values():
        await status_of(gateway, session, Status.WORKING)
    await eventually(lambda: _true(sent_texts(phones["b"]) == ["queued-while-stopped"]), "b's queued message sent")

    await queue(sessions["a"], "queued-after-start")
    second.nudge(sessions["a"].id)
    await eventually(lambda: _true(sent_texts(phones["a"]) == ["queued-after-start"]), "a's message sent", timeout=3)
    assert sent_texts(phones["c"]) == []
    await second.stop()


async def _true(value: bool) -> bool:
    return value


async def test_a_session_that_fails_while_a_reconcile_runs_is_not_started_again(
    gateway: Gateway, sim: Sim, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconcile lists the session (WORKING, to run); before it claims, the session's runner writes FAILED (the
    phone logged out), releases the lease and ends. The claim must go by the committed row, not by the listing:
    a FAILED session is not started again (it was: FAILED, then STARTING and a new QR code)."""
    supervisor = supervisor_for(gateway, sim)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)
        runner = supervisor.runners[session.id]
        listed, go_on = asyncio.Event(), asyncio.Event()
        beat = gateway.store.workers.beat

        async def held_after_listing(owner: str, ttl: float, url: str | None = None) -> dict[str, int]:
            if not go_on.is_set():  # the reconcile has listed its sessions and waits here, its lock held
                listed.set()
                await go_on.wait()
            return await beat(owner, ttl, url)

        monkeypatch.setattr(gateway.store.workers, "beat", held_after_listing)
        await listed.wait()
        await sim.post(f"/devices/{PHONE}/faults", {"kind": "logout"})
        await status_of(gateway, session, Status.FAILED)
        assert runner.task is not None
        await asyncio.wait_for(asyncio.shield(runner.task), 5)
        assert session.id not in supervisor.runners
        go_on.set()  # the reconcile goes on with its listing, taken before the failure
        await asyncio.sleep(1.0)  # that reconcile and several more
        assert session.id not in supervisor.runners
        current = await gateway.store.sessions.get(session.tenant_id, session.name)
        assert current is not None
        assert (current.status, current.reason) == (Status.FAILED, Reason.LOGGED_OUT)
        history = await gateway.store.sessions.history(session.tenant_id, session.id, limit=5)
        assert history[0].to_status is Status.FAILED  # nothing after the failure
    finally:
        await supervisor.stop()


async def test_a_runner_that_fails_runs_again_and_gives_up_after_max_attempts(
    gateway: Gateway, sim: Sim, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails (here a bug: its status write raises) does not end the session: the supervisor runs it
    again after a backoff, and only after ``max_attempts`` failures in a row records FAILED (engine_error)."""
    supervisor = monitored(gateway, sim, backoff_base=0.05, backoff_cap=0.1, max_attempts=3)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)
        runner = supervisor.runners[session.id]
        record = supervisor.recorder.record
        bugs: list[int] = [1]

        async def buggy(change: StatusChange) -> Session | None:
            if change.status is Status.STARTING and bugs:
                bugs.pop()
                raise RuntimeError("a bug")
            return await record(change)

        monkeypatch.setattr(supervisor.recorder, "record", buggy)
        connected = (await status_of(gateway, session, Status.WORKING)).connected_at
        await sim.post(f"/devices/{PHONE}/faults", {"kind": "drop"})

        async def back() -> bool:
            current = await gateway.store.sessions.get(session.tenant_id, session.name)
            return current is not None and current.status is Status.WORKING and current.connected_at != connected

        await eventually(back, "the session WORKING again after the failed run")
        assert supervisor.stats.runner_restarts == 1
        assert supervisor.runners[session.id] is runner

        bugs.extend([1] * 10)  # it fails every time now
        await sim.post(f"/devices/{PHONE}/faults", {"kind": "drop"})
        failed = await status_of(gateway, session, Status.FAILED)
        assert failed.reason is Reason.ENGINE_ERROR
        assert failed.note is not None
        assert "3 times in a row" in failed.note
        assert supervisor.stats.runner_restarts == 1 + 2  # the first failure's, then two before it gave up
        await eventually(lambda: _true(session.id not in supervisor.runners), "the runner to end")
    finally:
        await supervisor.stop()


async def test_a_runner_that_cannot_record_giving_up_says_why(
    gateway: Gateway, sim: Sim, session: Session, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Giving up records FAILED; when that write fails too, the log says so, with the reason (it used to be
    swallowed without a word)."""
    supervisor = monitored(gateway, sim, backoff_base=0.05, backoff_cap=0.1, max_attempts=2)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)
        record = supervisor.recorder.record

        async def buggy(change: StatusChange) -> Session | None:
            if change.status in (Status.STARTING, Status.FAILED):
                raise RuntimeError(f"a bug writing {change.status.value}")
            return await record(change)

        monkeypatch.setattr(supervisor.recorder, "record", buggy)
        await sim.post(f"/devices/{PHONE}/faults", {"kind": "drop"})

        def said() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "wagate.session" and r.levelname == "ERROR"]

        await eventually(lambda: _true(any("could not record FAILED" in m for m in said())), "the give-up said")
        assert [m for m in said() if "could not record FAILED" in m] == [
            "could not record FAILED after 2 failed runs: RuntimeError: a bug writing FAILED"
        ]
        current = await gateway.store.sessions.get(session.tenant_id, session.name)
        assert current is not None
        assert current.status is not Status.FAILED  # it could not be written, and was not
    finally:
        await supervisor.stop()


async def test_a_sender_that_the_database_refuses_sends_once_it_takes_writes(
    gateway: Gateway, sim: Sim, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the sender's write: it waits and tries again (it used to end, and what was queued
    stayed pending until the session's next connection); the message goes out once."""
    supervisor = monitored(gateway, sim, send_poll_interval=3600.0)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)
        mark_sending = gateway.store.messages.mark_sending
        refusals = [StoreUnavailable("the database is read-only: it refuses writes")]

        async def refusing(*args: Any, **kwargs: Any) -> list[str]:
            if refusals:
                raise refusals.pop()
            return await mark_sending(*args, **kwargs)

        monkeypatch.setattr(gateway.store.messages, "mark_sending", refusing)
        message_id = new_message_id()
        body = await supervisor.bodies.seal_body(session.tenant_id, session.id, message_id, {"text": "once"})
        new = NewOutbound(
            session.tenant_id, session.id, message_id, "15550009@s.whatsapp.net", "", MessageKind.TEXT, body
        )
        await gateway.store.messages.enqueue(new, max_queued=100)
        supervisor.nudge(session.id)

        def sent() -> list[str]:
            return [str(m.get("text")) for m in sim.server.device(PHONE).sent]

        await eventually(lambda: _true(sent() == ["once"]), "the message sent", timeout=5)
        assert refusals == []
        await asyncio.sleep(0.5)
        assert sent() == ["once"]
        assert (await status_of(gateway, session, Status.WORKING)).status is Status.WORKING
    finally:
        await supervisor.stop()

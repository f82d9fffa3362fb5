"""The supervisor: reconciles what tenants want with what runs, one runner task per session.

At start, and every ``reconcile_interval`` (and at once for a session the API just changed), it lists the sessions
that should run and claims their leases in one transaction; each claimed session gets a runner, handed the one
``RunnerContext`` this supervisor builds. Its parts: the leases it holds (``leases``), its share of the sessions
(``handover``), what is done to a session on request (``care``) and its periodic jobs (``housekeeping``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
from collections.abc import Coroutine, Sequence
from typing import Any

from wagate.domain.backups import Backup
from wagate.domain.sessions import Desired, Lease, Reason, Session, Status
from wagate.engines.base import EngineUnavailable, QrCode
from wagate.engines.registry import EngineRegistry
from wagate.errors import ConfigError, StoreError
from wagate.gateway import Gateway
from wagate.ids import BackupId, SessionId, TenantId
from wagate.periodic import every, once
from wagate.store.bodies import BodySealer
from wagate.store.vault import Vault
from wagate.supervisor.backups import take_backup
from wagate.supervisor.care import STOP_TIMEOUT, SessionCare, record_held
from wagate.supervisor.commands import Command
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.handover import Balancer
from wagate.supervisor.housekeeping import Housekeeping
from wagate.supervisor.keeper import RunnerKeeper
from wagate.supervisor.leases import HeldLeases
from wagate.supervisor.notify import Notifier
from wagate.supervisor.outbound import fail_queued
from wagate.supervisor.recorder import StatusRecorder
from wagate.supervisor.runner import SessionRunner
from wagate.supervisor.stats import SessionStats
from wagate.tasks import TaskSet

__all__ = ["RECENT_WORKERS", "START_SETTLE", "Supervisor"]

log = logging.getLogger("wagate.supervisor")

RECENT_WORKERS = 3600.0  # other workers alive within this many seconds: several may be starting together
START_SETTLE = 3.0  # seconds a worker of several waits at start for the others to say they are alive


class Supervisor:
    def __init__(
        self,
        gateway: Gateway,
        engines: EngineRegistry,
        *,
        rng: random.Random | None = None,
        stats: SessionStats | None = None,
    ) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.clock = gateway.clock
        self.rng = rng or random.Random()
        self.engines = engines
        self.store = gateway.store
        # "<worker>#<boot>": a later run of the same worker may take over leases of an earlier, dead one at once.
        self.owner = f"{self.settings.worker_id}#{secrets.token_hex(4)}"
        self.takeover = f"{self.settings.worker_id}#"
        self.runners: dict[SessionId, SessionRunner] = {}
        self._loops = TaskSet()  # reconcile and lease renewal: cancelled at stop
        self._runner_tasks = TaskSet()  # commanded to stop, never cancelled first
        self._lock = asyncio.Lock()
        self._stopping = False
        # What every runner is handed; the stats may come from the caller (the metrics read them).
        self.context = RunnerContext.build(gateway, rng=self.rng, owner=self.owner, stats=stats)
        self.keeper = RunnerKeeper(self.context, gateway.store, lambda: self._stopping)
        self.leases = HeldLeases(gateway.store.leases, self.settings, self.clock, self.owner, self.takeover)
        self.balancer = Balancer(self.settings, self.clock, self.rng, self.context.stats, self.owner, self.runners)
        self.care = SessionCare(self.context, gateway.store.backups, engines, self.leases, self.runners)
        self.housekeeping = Housekeeping(self.context, self.settings, gateway.store, engines, self.runners)
        self._peer_heard_at = -math.inf  # when another process was last heard (events.peers), by self.clock

    @property
    def stats(self) -> SessionStats:
        """What this supervisor's sessions have counted (held by the runners' context, not here)."""
        return self.context.stats

    @property
    def recorder(self) -> StatusRecorder:
        return self.context.recorder

    @property
    def bodies(self) -> BodySealer:
        return self.context.bodies

    @property
    def notifier(self) -> Notifier:
        return self.context.notifier

    @property
    def workers(self) -> dict[str, int]:
        """Live workers and the leases each holds, as of the last reconcile."""
        return self.balancer.workers

    @property
    def share(self) -> int:
        """This worker's share of the sessions to run, as of the last reconcile."""
        return self.balancer.spread().share

    def peer_heard(self, process: str) -> None:
        """Another process on the database is alive and listening (its hello, or events it announced): its
        WebSocket clients hear this worker's events from now on, not only from this worker's next reconcile."""
        if process != self.owner:
            self._peer_heard_at = self.clock()
            self.store.peers.announce(self.owner)

    # lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.recorder.start()
        if await self.store.workers.recent_workers(RECENT_WORKERS, besides=self.takeover):
            # Others ran lately: they may be starting too (a whole installation restarted). Say we are alive and
            # give them a moment to say so, so that the first to look does not claim every session.
            self.balancer.workers = await self.store.workers.beat(
                self.owner, self.settings.lease_ttl, self.settings.worker_url
            )
            await asyncio.sleep(min(START_SETTLE, self.settings.reconcile_interval))
        await self.reconcile()
        loops: list[tuple[Coroutine[Any, Any, None], str]] = [
            (every(self.balancer.reconcile_pause, self.reconcile, what="reconcile"), "reconcile"),
            (every(self.settings.lease_ttl / 3, self._renew_leases, what="lease renewal"), "lease-renewal"),
            (every(self.leases.lapse_pause, self._watch_lapses, what="lease watch"), "lease-watch"),
            (every(self.settings.health_interval, self.check_health, what="health check"), "health-monitor"),
            (every(self.settings.send_poll_interval, self.wake_senders, what="outbound poll"), "outbound-poll"),
            (every(3600.0, self.sweep_local, what="local sweep"), "local-sweep"),
            (once(60.0, self.sweep_local, what="local sweep"), "local-sweep-at-start"),  # engines in use by then
        ]
        for loop, name in loops:
            self._loops.spawn(loop, name)
        log.info("supervisor %s running %d session(s)", self.owner, len(self.runners))

    async def stop(self) -> None:
        """Stop every runner (connections closed, credentials kept), release the leases, flush statuses."""
        self._stopping = True
        loops = list(self._loops)
        for task in loops:
            task.cancel()  # a job in progress ends first (periodic.to_end)
        if loops:
            await asyncio.wait(loops, timeout=STOP_TIMEOUT)
        runners = list(self.runners.values())
        for runner in runners:
            runner.command(Command.SHUTDOWN)
        pending = [r.task for r in runners if r.task is not None]
        if pending:
            _, late = await asyncio.wait(pending, timeout=STOP_TIMEOUT)
            if late:
                log.warning("%d session(s) did not stop in %.0fs; cancelling them", len(late), STOP_TIMEOUT)
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=1.0)
        await self.keeper.watch.close()
        await self.recorder.stop()
        await self.notifier.drain()
        with contextlib.suppress(StoreError):
            await self.store.leases.release_all(self.owner)
            await self.store.workers.leave(self.owner)
        await self.engines.close()
        log.info("supervisor stopped (%d session(s) released)", len(runners))

    # reconcile -------------------------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Bring every session in line with what its tenant wants, taking this worker's share of those to run."""
        async with self._lock:
            self.leases.reconciled_at = self.clock()
            # Listed under the lock: every runner was launched from a row committed before this listing, so a
            # runner missing from it really is unwanted (not merely created a moment after the listing). The
            # listing can still be stale the other way (a runner may end meanwhile, after writing FAILED): the
            # claims in ``_apply`` check each session's committed row again.
            sessions = await self.store.sessions.list_to_reconcile_all_tenants()
            wanted = {s.id for s in sessions}
            for session_id, runner in list(self.runners.items()):
                if session_id not in wanted:  # deleted, or failed/stopped by another owner
                    runner.command(Command.LEASE_LOST)
            # The live workers (each alive as long as its leases: a dead one is no longer counted once they lapse).
            workers = await self.store.workers.beat(self.owner, self.settings.lease_ttl, self.settings.worker_url)
            self.balancer.see(workers)
            # Alone, a worker's events reach every WebSocket client from its own bus; with others, they are
            # announced to the others' (events.peers), also to one heard of lately that this beat does not show yet.
            lately = self.clock() - self._peer_heard_at < 2 * self.settings.reconcile_interval
            self.store.peers.announce(self.owner if len(workers) > 1 or lately else None)
            wanted_running = [s for s in sessions if s.desired is Desired.RUNNING and s.status is not Status.FAILED]
            self.balancer.total = len(wanted_running)
            await self._apply(sessions, room=self.balancer.claim_room())
            self.balancer.hand_over_excess()

    async def reconcile_one(self, tenant_id: TenantId, session_id: SessionId) -> None:
        """Apply one session's wishes at once (the API calls this after a change)."""
        session = await self.store.sessions.get_by_id(tenant_id, session_id)
        async with self._lock:
            if session is None:
                runner = self.runners.get(session_id)
                if runner is not None:
                    runner.command(Command.LEASE_LOST)
                return
            await self._apply([session])

    async def _apply(self, sessions: Sequence[Session], *, room: int | None = None) -> None:
        """Command this worker's runners after changes, and claim sessions that run nowhere: at most ``room`` free
        ones to run (all when None), every one left running by a worker that died (to record that it stopped), and
        every one an earlier run of this worker held."""
        if self._stopping:
            return
        to_run: list[Session] = []
        to_settle: list[Session] = []
        for session in sessions:
            runner = self.runners.get(session.id)
            wants_run = session.desired is Desired.RUNNING and session.status is not Status.FAILED
            if runner is not None:
                if not wants_run:
                    runner.command(Command.STOP, session)
                elif session.generation != runner.generation:
                    runner.command(Command.RESTART, session)
            elif wants_run:
                to_run.append(session)
            elif session.status not in (Status.STOPPED, Status.FAILED):
                to_settle.append(session)
        if not to_run and not to_settle:
            return
        self.rng.shuffle(to_run)  # workers claiming at once take different ones
        leases = {}
        # Each claim checks the sessions' committed rows: a runner that ended since the listing (its last status
        # written, its lease released, itself gone from ``runners``) leaves a listing that no longer holds.
        if to_settle:
            leases = await self.store.leases.acquire_many(
                [s.id for s in to_settle],
                self.owner,
                self.settings.lease_ttl,
                takeover=self.takeover,
                wanted=Desired.STOPPED,
            )
        if to_run:
            leases |= await self.store.leases.acquire_many(
                [s.id for s in to_run],
                self.owner,
                self.settings.lease_ttl,
                takeover=self.takeover,
                limit=room,
                wanted=Desired.RUNNING,
            )
        to_claim = to_settle + to_run
        await self._preload([s for s in to_claim if s.id in leases and s.desired is Desired.RUNNING])
        settle: list[tuple[Session, Lease]] = []
        for session in to_claim:
            lease = leases.get(session.id)
            if lease is None:
                continue  # another worker runs it
            if session.desired is Desired.STOPPED:
                settle.append((session, lease))  # left running by a worker that died: record that it stopped
            else:
                await self._launch(session, lease)
        if settle:
            await self._settle(settle)

    async def _preload(self, sessions: Sequence[Session]) -> None:
        """Load in bulk what each engine reads first, when many sessions start together (a restart)."""
        if len(sessions) < 2:
            return
        by_namespace: dict[str, list[tuple[TenantId, SessionId]]] = {}
        for session in sessions:
            try:
                namespace = self.engines.get(session.engine).connect_namespace
            except ConfigError:
                continue  # reported when the session is launched
            if namespace is not None:
                by_namespace.setdefault(namespace, []).append((session.tenant_id, session.id))
        for namespace, pairs in by_namespace.items():
            await self.gateway.vaults.preload(pairs, namespace)
        queued = await self.store.messages.queued_sessions_all_tenants()
        self.context.outbox.mark_empty({s.id for s in sessions if s.id not in queued})

    async def _launch(self, session: Session, lease: Lease) -> None:
        try:
            engine = self.engines.get(session.engine)
        except ConfigError as exc:
            log.warning("session %s: %s -> FAILED (engine_error): %s", session.id, session.status.value, exc)
            await record_held(self.context, session, lease, Status.FAILED, Reason.ENGINE_ERROR, note=str(exc))
            await self.store.leases.release(session.id, self.owner, lease.epoch)
            return
        runner = SessionRunner(self.context, session, lease, engine)
        self.runners[session.id] = runner
        self.balancer.claimed()
        runner.task = self._runner_tasks.spawn(self._run(runner), f"session-{session.id}")

    async def _run(self, runner: SessionRunner) -> None:
        try:
            await self.keeper.keep(runner)  # until it ends as it should: a failed run runs again
        except Exception:  # not expected: said, and the session's lease released for the next reconcile to claim
            runner.log.exception("the session's runner failed")
        finally:
            # Release before forgetting the runner: while it is still listed no reconcile can claim the session
            # again under the epoch that is being released.
            if not self._stopping:
                with contextlib.suppress(StoreError):
                    await self.store.leases.release(runner.session.id, self.owner, runner.lease.epoch)
            if self.runners.get(runner.session.id) is runner:
                del self.runners[runner.session.id]
            self.context.outbox.forget(runner.session.id)
            self.gateway.vaults.drop_preloaded(runner.session.id)

    async def _settle(self, settled: list[tuple[Session, Lease]]) -> None:
        await asyncio.gather(
            *(record_held(self.context, s, lease, Status.STOPPED, Reason.USER) for s, lease in settled)
        )
        for session, lease in settled:
            await self.store.leases.release(session.id, self.owner, lease.epoch)

    async def _renew_leases(self) -> None:
        await self.leases.renew(self.runners)

    async def _watch_lapses(self) -> None:
        await self.leases.watch_lapses(self.reconcile)

    # what runners and the API use ------------------------------------------------------------------------------

    def vault(self, runner: SessionRunner) -> Vault:
        return runner.vault()

    def runs(self, session_id: SessionId) -> bool:
        """Whether this worker runs the session."""
        return session_id in self.runners

    def qr(self, session_id: SessionId) -> QrCode | None:
        runner = self.runners.get(session_id)
        if runner is None or runner.qr is None or runner.qr.expires_at <= self.clock():
            return None
        return runner.qr

    async def request_pairing_code(self, session_id: SessionId, phone: str) -> str:
        runner = self.runners.get(session_id)
        if runner is None or runner.conn is None:
            raise EngineUnavailable("the session is not waiting to be linked on this worker")
        return await runner.conn.request_pairing_code(phone)

    async def check_health(self) -> None:
        """The health monitor, now: stuck sessions reconnected, idle ones stopped, scheduled backups taken."""
        await self.housekeeping.check_health()

    async def backup(self, session: Session, epoch: int, reason: str) -> Backup | None:
        """Keep a sealed copy of the session's auth state, under this supervisor's lease at ``epoch``."""
        return await take_backup(self.context, session, epoch, reason)

    async def reset(self, session: Session) -> None:
        """By hand, what a quarantine does: back up, wipe, and (when it runs) link again from a new QR code."""
        await self.care.reset(session)

    async def restore(self, session: Session, backup_id: BackupId) -> int:
        """Replace a stopped session's auth state with a backup's; refused while it runs anywhere."""
        return await self.care.restore(session, backup_id)

    async def logout(self, session: Session) -> None:
        """Unlink the device and wipe the credentials; a running session starts over with a new QR code."""
        await self.care.logout(session)

    async def forget(self, session: Session) -> None:
        """Before a delete: log the device out if it runs here, wait for its runner to end, and remove what its
        engine keeps outside the vault."""
        await self.care.forget(session)

    def nudge(self, session_id: SessionId) -> None:
        """A message was queued for this session: its sender (when it runs here) looks at once."""
        self.context.outbox.forget(session_id)
        runner = self.runners.get(session_id)
        if runner is not None and runner.sender is not None:
            runner.sender.wake()

    async def wake_senders(self) -> None:
        """Wake the senders of sessions with messages queued through another worker (or left by a crash)."""
        if not any(r.sender is not None for r in self.runners.values()):
            return
        for session_id in await self.store.messages.queued_sessions_all_tenants():
            self.nudge(session_id)

    async def sweep_local(self) -> int:
        """Forget what the engines keep on this machine of sessions that no longer exist; how many were."""
        return await self.housekeeping.sweep_local()

    async def fail_outbound(self, session: Session, why: str) -> None:
        """The session's link is gone: its queued messages fail rather than go out from a later link."""
        await fail_queued(self.store.messages, session, why)

"""The supervisor: reconciles what tenants want with what runs, one runner task per session.

At start, and every ``reconcile_interval`` (and at once for a session the API just changed), it lists the sessions
that should run and claims their leases in one transaction; each claimed session gets a runner. Leases are renewed
in one statement for all of this worker's sessions, and the worker's own life with them; a runner whose lease is
gone is stopped without writing. When another worker's lease lapses (that worker died), a reconcile runs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

from wagate.domain import payloads
from wagate.domain.backups import Backup
from wagate.domain.events import Event, EventType
from wagate.domain.sessions import Desired, Lease, Reason, Session, Status, StatusChange
from wagate.engines.base import EngineUnavailable, QrCode
from wagate.engines.registry import EngineRegistry
from wagate.errors import ConfigError, StoreError
from wagate.gateway import Gateway
from wagate.ids import BackupId, SessionId, TenantId
from wagate.periodic import every, once
from wagate.store.bodies import BodySealer
from wagate.store.vault import Vault
from wagate.supervisor.backups import take_backup
from wagate.supervisor.balance import Spread
from wagate.supervisor.commands import Command
from wagate.supervisor.context import OutboxHints, RunnerContext, RunnerSettings
from wagate.supervisor.corruption import CorruptionPolicy
from wagate.supervisor.keeper import RunnerKeeper
from wagate.supervisor.notify import Notifier
from wagate.supervisor.outbound import fail_queued
from wagate.supervisor.recorder import StatusRecorder
from wagate.supervisor.runner import SessionRunner
from wagate.supervisor.stats import SessionStats

log = logging.getLogger("wagate.supervisor")

STOP_TIMEOUT = 6.0
REBALANCE_PAUSE = 2.0  # seconds between reconciles of a worker that is waiting for sessions handed over to it
REBALANCE_COOLDOWN = 10.0  # seconds at least that a worker which handed sessions over claims no free ones
RECENT_WORKERS = 3600.0  # other workers alive within this many seconds: several may be starting together
START_SETTLE = 3.0  # seconds a worker of several waits at start for the others to say they are alive
LAPSE_MARGIN = 0.1  # seconds after another worker's lease expires before this one looks (timers are not exact)


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
        self._loops: set[asyncio.Task[None]] = set()  # reconcile and lease renewal: cancelled at stop
        self._runner_tasks: set[asyncio.Task[None]] = set()  # commanded to stop, never cancelled first
        self._lock = asyncio.Lock()
        self._stopping = False
        # What every runner is handed; the stats may come from the caller (the metrics read them).
        self.context = RunnerContext(
            settings=RunnerSettings.of(self.settings),
            clock=self.clock,
            rng=self.rng,
            owner=self.owner,
            vaults=gateway.vaults,
            bodies=BodySealer(gateway.vaults),
            recorder=StatusRecorder(gateway.store.sessions),
            messages=gateway.store.messages,
            backups=gateway.store.backups,
            notifier=Notifier(self.settings, gateway.store, self.clock),
            connect_slots=asyncio.Semaphore(self.settings.connect_concurrency),
            corruption=CorruptionPolicy(
                window=self.settings.corruption_window,
                session_failures=self.settings.corruption_threshold,
                min_contacts=self.settings.corruption_min_contacts,
                contact_failures=self.settings.contact_reset_threshold,
            ),
            outbox=OutboxHints(),
            stats=stats if stats is not None else SessionStats(),
        )
        self.keeper = RunnerKeeper(self.context, gateway.store, lambda: self._stopping)
        self.workers: dict[str, int] = {}  # live workers and the leases each holds, as of the last reconcile
        self._peer_heard_at = -math.inf  # when another process was last heard (events.peers), by self.clock
        self._total = 0  # sessions to run, as of the last reconcile
        self._reconciled_at = 0.0  # when the last reconcile began, by self.clock
        self._next_lapse: float | None = None  # the earliest expiry of another worker's lease, as last seen
        self._waiting_since: float | None = None  # since when others are about to hand sessions over to this one
        self._handed_over_at: float | None = None

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

    def peer_heard(self, process: str) -> None:
        """Another process on the database is alive and listening (its hello, or events it announced): its
        WebSocket clients hear this worker's events from now on, not only from this worker's next reconcile."""
        if process != self.owner:
            self._peer_heard_at = self.clock()
            self.store.events.announce(self.owner)

    # lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.recorder.start()
        if await self.store.leases.recent_workers(RECENT_WORKERS, besides=self.takeover):
            # Others ran lately: they may be starting too (a whole installation restarted). Say we are alive and
            # give them a moment to say so, so that the first to look does not claim every session.
            self.workers = await self.store.leases.beat(self.owner, self.settings.lease_ttl, self.settings.worker_url)
            await asyncio.sleep(min(START_SETTLE, self.settings.reconcile_interval))
        await self.reconcile()
        loops: list[tuple[Awaitable[None], str]] = [
            (every(self._reconcile_pause, self.reconcile, what="reconcile"), "reconcile"),
            (every(self.settings.lease_ttl / 3, self._renew_leases, what="lease renewal"), "lease-renewal"),
            (every(self._lapse_pause, self._watch_lapses, what="lease watch"), "lease-watch"),
            (every(self.settings.health_interval, self.check_health, what="health check"), "health-monitor"),
            (every(self.settings.send_poll_interval, self.wake_senders, what="outbound poll"), "outbound-poll"),
            (every(3600.0, self.prune_messages, what="message retention"), "message-retention"),
            (every(3600.0, self.sweep_local, what="local sweep"), "local-sweep"),
            (once(60.0, self.sweep_local, what="local sweep"), "local-sweep-at-start"),  # engines in use by then
        ]
        for loop, name in loops:
            self._spawn(self._loops, loop, name)
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
            await self.store.leases.leave(self.owner)
        await self.engines.close()
        log.info("supervisor stopped (%d session(s) released)", len(runners))

    @staticmethod
    def _spawn(owner: set[asyncio.Task[None]], coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        owner.add(task)
        task.add_done_callback(owner.discard)
        return task

    # reconcile -------------------------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Bring every session in line with what its tenant wants, taking this worker's share of those to run."""
        async with self._lock:
            self._reconciled_at = self.clock()
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
            self.workers = await self.store.leases.beat(self.owner, self.settings.lease_ttl, self.settings.worker_url)
            # Alone, a worker's events reach every WebSocket client from its own bus; with others, they are
            # announced to the others' (events.peers), also to one heard of lately that this beat does not show yet.
            lately = self.clock() - self._peer_heard_at < 2 * self.settings.reconcile_interval
            self.store.events.announce(self.owner if len(self.workers) > 1 or lately else None)
            self._total = sum(1 for s in sessions if s.desired is Desired.RUNNING and s.status is not Status.FAILED)
            await self._apply(sessions, room=self._claim_room(self._spread()))
            self._hand_over_excess(self._spread())

    def _spread(self) -> Spread:
        """What this worker sees: the others as of the last reconcile, itself as it is (sessions being handed over
        are no longer its own, so that a round does not hand them over twice)."""
        staying = sum(1 for runner in self.runners.values() if not runner.handing_over)
        return Spread(self.owner, self._total, {**self.workers, self.owner: staying})

    @property
    def share(self) -> int:
        """This worker's share of the sessions to run, as of the last reconcile."""
        return self._spread().share

    def _hand_over_excess(self, spread: Spread) -> None:
        """Hand over this worker's part of what workers below the floor lack: WORKING sessions only, which
        reconnect on the worker that claims them without a new scan (one being linked keeps its QR code here)."""
        count = spread.to_hand_over(self.settings.rebalance_step)
        movable = [r for r in self.runners.values() if r.observed()[0] is Status.WORKING and not r.handing_over]
        chosen = self.rng.sample(movable, min(count, len(movable)))
        for runner in chosen:
            runner.handing_over = True
            runner.command(Command.HAND_OVER)
        if chosen:
            self.stats.handovers += len(chosen)
            self._handed_over_at = self.clock()
            log.info(
                "handing %d session(s) over: %d run here, %d workers share %d",
                len(chosen),
                spread.mine,
                len(spread.counts),
                spread.total,
            )

    def _claim_room(self, spread: Spread) -> int:
        """Free sessions to claim this round: up to the share, none for a while after handing some over."""
        if self._handed_over_at is not None and self.clock() - self._handed_over_at < self._cooldown:
            return 0
        return spread.room()

    def _reconcile_pause(self) -> float:
        """Until the next reconcile: the interval, or less while other workers are about to hand sessions over to
        this one, so that it claims them within seconds (for as long as a worker claims nothing after handing
        over: an excess of sessions that are not WORKING is never handed over)."""
        interval = self.settings.reconcile_interval
        now = self.clock()
        if self.settings.rebalance_step <= 0 or not self._spread().waiting():
            self._waiting_since = None
            return interval
        if self._waiting_since is None:
            self._waiting_since = now
        return min(interval, REBALANCE_PAUSE) if now - self._waiting_since < self._cooldown else interval

    @property
    def _cooldown(self) -> float:
        """How long a worker that handed sessions over leaves them to the others."""
        return max(2 * self.settings.reconcile_interval, REBALANCE_COOLDOWN)

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

    async def _record(self, session: Session, lease: Lease, status: Status, reason: Reason | None, **more: Any) -> None:
        """Record a status for a session this supervisor holds the lease of, outside any runner."""
        await self.recorder.record(
            StatusChange(session.tenant_id, session.id, self.owner, lease.epoch, status, reason, **more)
        )

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
            await self._record(session, lease, Status.FAILED, Reason.ENGINE_ERROR, note=str(exc))
            await self.store.leases.release(session.id, self.owner, lease.epoch)
            return
        runner = SessionRunner(self.context, session, lease, engine)
        self.runners[session.id] = runner
        self._waiting_since = None  # a claim: sessions are still coming
        runner.task = self._spawn(self._runner_tasks, self._run(runner), f"session-{session.id}")

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
        await asyncio.gather(*(self._record(s, lease, Status.STOPPED, Reason.USER) for s, lease in settled))
        for session, lease in settled:
            await self.store.leases.release(session.id, self.owner, lease.epoch)

    async def _renew_leases(self) -> None:
        held = await self.store.leases.renew_all(self.owner, self.settings.lease_ttl)
        for session_id, runner in list(self.runners.items()):
            if session_id not in held:
                runner.command(Command.LEASE_LOST)

    async def _watch_lapses(self) -> None:
        """Reconcile as soon as another worker's lease lapses (that worker stopped renewing: it died, or hangs):
        its sessions are taken over at the lease's expiry, not at the next reconcile."""
        while True:
            lapse = await self.store.leases.next_lapse(besides=self.owner, after=self._reconciled_at)
            if lapse is None or lapse > self.clock():
                break
            log.info("a lease of another worker lapsed %.1fs ago; reconciling", self.clock() - lapse)
            await self.reconcile()  # it begins after the lapse: the next look is for later ones
        self._next_lapse = lapse

    def _lapse_pause(self) -> float:
        """Until the next look at the other workers' leases: just past the earliest expiry seen, and at least
        every third of a lease (renewals move the expiries on; new leases come)."""
        longest = self.settings.lease_ttl / 3
        if self._next_lapse is None:
            return longest
        return min(longest, max(LAPSE_MARGIN, self._next_lapse - self.clock() + LAPSE_MARGIN))

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
        """The health monitor: reconnect stuck sessions (through their backoff), stop idle ones that opted in, take
        scheduled backups of working ones."""
        now = self.clock()
        settings = self.settings
        for runner in list(self.runners.values()):
            problem = runner.stuck(now, settings.stuck_timeout)
            if problem is not None:
                runner.log.warning("health monitor: %s; reconnecting", problem)
                self.stats.stuck_restarts += 1
                runner.kick(problem)
            elif runner.idle(now, settings.idle_timeout):
                runner.log.info("health monitor: no activity for %.0fs; stopping (idle)", now - runner.last_activity)
                self.stats.idle_stops += 1
                session = runner.session
                await self.store.sessions.set_desired(session.tenant_id, session.name, Desired.STOPPED, actor="monitor")
                runner.stop_idle()
            elif (
                settings.backup_interval
                and runner.observed()[0] is Status.WORKING
                and now - runner.last_backup_at >= settings.backup_interval
            ):
                runner.last_backup_at = now
                await self.backup(runner.session, runner.lease.epoch, "scheduled")

    async def backup(self, session: Session, epoch: int, reason: str) -> Backup | None:
        """Keep a sealed copy of the session's auth state, under this supervisor's lease at ``epoch``."""
        return await take_backup(self.context, session, epoch, reason)

    async def reset(self, session: Session) -> None:
        """By hand, what a quarantine does: back up, wipe, and (when it runs) link again from a new QR code."""
        runner = self.runners.get(session.id)
        if runner is not None:
            runner.reset("api")
            return
        async with self._held(session) as lease:
            backup = await self.backup(session, lease.epoch, "reset")
            await self.context.vault(session, lease.epoch).wipe()
            await self.fail_outbound(session, "the session was reset and must be linked again")
            await self._forget_local(session)
            event = Event.new(
                EventType.SESSION_RESET,
                session.tenant_id,
                session.id,
                session.name,
                self.clock(),
                payloads.session_reset(backup.id if backup else None),
            )
            await self._record(session, lease, session.status, session.reason, clear_me=True, events=(event,))

    async def restore(self, session: Session, backup_id: BackupId) -> int:
        """Replace a stopped session's auth state with a backup's; refused while it runs anywhere."""
        if session.id in self.runners or session.desired is Desired.RUNNING or session.status is not Status.STOPPED:
            raise EngineUnavailable("stop the session first: a backup restores only into a stopped session")
        payload = await self.store.backups.payload(session.tenant_id, session.id, backup_id)
        if payload is None:
            raise LookupError(backup_id)
        async with self._held(session) as lease:
            vault = self.context.vault(session, lease.epoch)
            return await vault.import_bundle(payload)

    @contextlib.asynccontextmanager
    async def _held(self, session: Session) -> AsyncIterator[Lease]:
        """The session's lease for a moment, for work on a session that runs nowhere; refused when another holds it."""
        lease = await self.store.leases.acquire(session.id, self.owner, self.settings.lease_ttl, takeover=self.takeover)
        if lease is None:
            raise EngineUnavailable("another worker holds this session's lease")
        try:
            yield lease
        finally:
            await self.store.leases.release(session.id, self.owner, lease.epoch)

    async def logout(self, session: Session) -> None:
        """Unlink the device and wipe the credentials; a running session starts over with a new QR code."""
        runner = self.runners.get(session.id)
        if runner is not None:
            runner.command(Command.LOGOUT)
            return
        async with self._held(session) as lease:
            await self.backup(session, lease.epoch, "logout")
            await self.context.vault(session, lease.epoch).wipe()
            await self.fail_outbound(session, "the session logged out")
            await self._forget_local(session)
            await self._record(session, lease, session.status, session.reason, clear_me=True)

    async def forget(self, session: Session) -> None:
        """Before a delete: log the device out if it runs here, wait for its runner to end, and remove what its
        engine keeps outside the vault."""
        runner = self.runners.get(session.id)
        if runner is not None and runner.task is not None:
            runner.command(Command.DELETE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(runner.task), STOP_TIMEOUT)
        await self._forget_local(session)

    async def _forget_local(self, session: Session) -> None:
        """The engine's local copy of a session's credentials goes with the vault's (not left in a file)."""
        try:
            engine = self.engines.get(session.engine)
        except ConfigError:
            return  # an engine this build cannot load kept nothing here
        await engine.forget(session.id)

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
        """Forget what the engines keep on this machine of sessions that no longer exist (deleted through another
        worker, or while this one was down): their local credentials must not outlive them. Sessions that exist
        keep their files (a cache the vault can rebuild), and so does anything running here."""
        removed = 0
        for engine in self.engines.loaded():
            candidates = [i for i in await engine.local_sessions() if SessionId(i) not in self.runners]
            if not candidates:
                continue
            existing = await self.store.sessions.existing_all_tenants(candidates)
            for session_id in candidates:
                if session_id not in existing and SessionId(session_id) not in self.runners:
                    await engine.forget(session_id)
                    removed += 1
        if removed:
            log.info("removed the local files of %d deleted session(s)", removed)
        return removed

    async def prune_messages(self) -> None:
        removed = await self.store.messages.prune_all_tenants(self.clock())
        if removed:
            log.info("message retention: %d message(s) deleted", removed)

    async def fail_outbound(self, session: Session, why: str) -> None:
        """The session's link is gone: its queued messages fail rather than go out from a later link."""
        await fail_queued(self.store.messages, session, why)

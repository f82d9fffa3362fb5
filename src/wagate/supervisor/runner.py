"""One session's life: connect, reconnect with backoff, carry out commands, stop when told (what a connection
reports is followed by its base, ``wagate.supervisor.follow``).

The runner owns the session's lease (given by the supervisor) and writes its observed status through the status
recorder, fenced by that lease: when a write comes back refused, the lease has moved and the runner ends without
writing anything more. When the database refuses a write (read-only, disk full), the run ends with the connection
closed (nothing it cannot record is acknowledged) and ``run`` says so; the supervisor runs it again once the
database takes writes. Meanwhile ``observed`` tells how the session really is, which its row may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from wagate.domain.sessions import Lease, Reason, Session, Status
from wagate.engines.base import (
    Connection,
    DeviceStateDamaged,
    Disconnected,
    Engine,
    EngineConnectError,
    EngineContext,
    EngineEvent,
    LoggedOut,
    Replaced,
    TemporarilyBanned,
)
from wagate.errors import CryptoError, LeaseLost, StoreUnavailable
from wagate.logs import session_var, tenant_var
from wagate.store.proxies import open_proxy
from wagate.supervisor.backoff import Backoff, CircuitBreaker
from wagate.supervisor.backups import take_backup
from wagate.supervisor.commands import Command
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.follow import ConnectionFollower
from wagate.supervisor.outbound import fail_queued
from wagate.supervisor.repair import API, Repair

__all__ = ["HAND_OVER_NOTE", "SHUTDOWN_NOTE", "STABLE_AFTER", "STORE_NOTE", "SessionRunner"]

log = logging.getLogger("wagate.session")

# A connection that drops sooner than this after connecting counts as a failed attempt, so that a connect-then-drop
# loop (a flapping network, a server that accepts and closes) still backs off and trips the breaker.
STABLE_AFTER = 10.0
SHUTDOWN_NOTE = "the gateway stopped; the session reconnects when it runs again"
STORE_NOTE = "disconnected while the database refuses writes ({}); it reconnects once they go through again"
HAND_OVER_NOTE = "handed over to another worker, to spread the sessions; it reconnects there"


@dataclass(frozen=True, slots=True)
class _Ended:
    event: EngineEvent


@dataclass(frozen=True, slots=True)
class _Failed:
    error: str


class _Interrupted:
    pass


class SessionRunner(ConnectionFollower):
    """Drives one session toward running, under its lease, until it is told to end or ends for good."""

    def __init__(self, ctx: RunnerContext, session: Session, lease: Lease, engine: Engine) -> None:
        super().__init__(ctx, session, lease)
        self.engine = engine
        self.generation = session.generation
        self.attempt = 0
        settings = ctx.settings
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap, ctx.rng)
        self._breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset, ctx.clock)
        self.handing_over = False  # told to end here so that another worker takes the session
        self._repair = Repair(ctx, self)
        self._reset_cause = API  # why a RESET command came: by hand, or the cause of a quarantine
        self._stop_reason = Reason.USER
        self._kicked = ""
        self._awaiting_slot = False
        self._ending = False  # told to end (stop, shut down, hand over...): ends even when its last write fails
        self.fault: StoreUnavailable | None = None  # the database refused a write: disconnected until it takes one
        interval = settings.backup_interval
        # Scheduled backups start spread over one interval, so that a restart does not back up everything at once.
        self.last_backup_at = ctx.clock() - ctx.rng.uniform(0, interval) if interval else 0.0
        self.task: asyncio.Task[None] | None = None

    # control ---------------------------------------------------------------------------------------------------

    def command(self, command: Command, session: Session | None = None) -> None:
        if session is not None:
            self._status.session = session
            self.generation = session.generation
        self._orders.give(command)

    def winding_down(self) -> bool:
        """Told to end (stopped, shut down, handed over, deleted), whether or not it has yet: a weaker command given
        now would never be carried out."""
        pending = self._orders.pending
        return self._ending or (pending is not None and (pending >= Command.STOP or pending is Command.HAND_OVER))

    # the loop --------------------------------------------------------------------------------------------------

    async def run(self) -> bool:
        """Run the session until it ends; True when it ended as it should (told to, or for good: FAILED, lease
        lost), False when it failed and is to run again (``fault`` says whether the database refused a write)."""
        tenant_var.set(self.session.tenant_id)
        session_var.set(self.session.id)
        self.fault = None
        self.worked = False
        try:
            await self._loop()
            return True
        except LeaseLost:
            self.log.warning("lease lost: another owner has this session now; stopping without further writes")
            return True
        except StoreUnavailable as exc:
            self.fault = exc
            self.log.warning("the database refuses writes (%s): disconnected until it takes them again", exc)
            return self._ending
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("session runner failed")
            return self._ending
        finally:
            await self._stop_sender()
            conn, self.conn = self.conn, None
            self.qr = None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.disconnect()

    def observed(self) -> tuple[Status, Reason | None, str | None]:
        """How the session is now, as its row may not say: a status the database refused to record is not the
        session's status (it is disconnected, waiting for the database)."""
        if self.fault is not None:
            return Status.STARTING, None, STORE_NOTE.format(self.fault)
        if not self._status.said:
            return Status.STARTING, None, None
        return self.status, self._status.reason, self._status.note

    async def until(self, done: asyncio.Future[None]) -> None:
        """Wait for ``done`` (the database taking writes again), or for a command."""
        await self._orders.until(done)

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (before running again), or for a command."""
        await self._orders.sleep(seconds)

    async def give_up(self, failures: int) -> None:
        """Record FAILED after ``failures`` failed runs in a row (best effort: the store may be what fails)."""
        note = f"internal error, {failures} times in a row; see the gateway's log"
        try:
            await self._set(Status.FAILED, Reason.ENGINE_ERROR, note=note)
        except Exception as exc:  # said, not raised: the lease goes back, and a later reconcile runs it again
            self.log.error("could not record FAILED after %d failed runs: %s: %s", failures, type(exc).__name__, exc)

    async def _loop(self) -> None:
        while True:
            command = self._orders.take()
            if command is not None and not await self._obey(command):
                return
            wait = self._breaker.remaining()
            if wait > 0 and not await self._orders.sleep(wait):
                continue  # interrupted: the command is taken at the top
            await self._set(Status.STARTING, None, note=self._status.note)
            outcome = await self._connect_once()
            if isinstance(outcome, _Interrupted):
                continue  # the command is taken at the top of the loop
            if not await self._after(outcome):
                return

    async def _connect_once(self) -> _Ended | _Failed | _Interrupted:
        self._connected_at = None
        self._engine_reconnecting = False
        self.progress_at = self._ctx.clock()  # a new attempt: the stuck clock starts over
        self._ended = None
        try:
            proxy = await open_proxy(self._ctx.vaults, self.session.tenant_id, self.session.id, self.session.config)
        except CryptoError:  # never without the proxy it was given: its address would show
            return _Failed("the session's proxy password no longer opens; set the proxy again")
        ctx = EngineContext(
            tenant_id=self.session.tenant_id,
            session_id=self.session.id,
            session_name=self.session.name,
            auth=self.vault(),
            emit=self._on_event,
            emit_many=self._on_events,
            log=self.log,
            config=self.session.config,
            epoch=self.lease.epoch,
            clock=self._ctx.clock,
            proxy=proxy,
        )
        conn = self.engine.open(ctx)
        self.conn = conn
        connecting = asyncio.ensure_future(self._connect(conn))
        connecting.add_done_callback(self._orders.wake)
        try:
            await self._orders.wait_until(connecting.done)
        finally:
            if not connecting.done():  # a command (stop, shutdown...) arrived while connecting: give up at once
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await connecting
        if connecting.cancelled():
            return _Interrupted()
        failure = connecting.result()
        if failure is not None:
            self.conn = None
            return failure
        await self._orders.wait_until(lambda: self._ended is not None)
        await self._stop_sender()
        if self._ended is not None:
            self.conn = None
            return _Ended(self._ended)
        return _Interrupted()

    async def _connect(self, conn: Connection) -> _Failed | None:
        """Connect within the timeout, taking a connection slot; the failure, or None once connected."""
        try:
            self._awaiting_slot = True
            async with self._ctx.connect_slots:
                self._awaiting_slot = False
                self.progress_at = self._ctx.clock()  # waiting for a slot is not being stuck
                async with asyncio.timeout(self._ctx.settings.connect_timeout):
                    await conn.connect()
        except EngineConnectError as exc:
            return _Failed(exc.reason)
        except TimeoutError:
            await conn.disconnect()
            return _Failed("the connection timed out")
        finally:
            self._awaiting_slot = False
        return None

    async def _obey(self, command: Command) -> bool:
        """Carry out a command; False when the runner must end."""
        self._ending = command >= Command.STOP or command is Command.HAND_OVER
        await self._stop_sender()
        conn, self.conn = self.conn, None
        self.qr = None
        if command is Command.RESET:
            if conn is not None:
                await conn.disconnect()
            await self._reset()
            return True
        if command is Command.KICK:
            if conn is not None:
                await conn.disconnect()
            return await self._retry(self._kicked)
        if command is Command.LOGOUT or command is Command.DELETE:
            if conn is not None:
                await conn.logout()
            if command is Command.DELETE:
                return False
            await take_backup(self._ctx, self.session, self.lease.epoch, "logout")
            await self.vault().wipe()
            await fail_queued(self._ctx.messages, self.session, "the session logged out")
            await self._set(Status.STARTING, None, clear_me=True, note="logged out; waiting for a new link")
            self.attempt = 0
            return True
        if conn is not None:
            await conn.disconnect()
        if command is Command.RESTART:
            self.attempt = 0
            self._breaker.record_success()
            return True
        if command is Command.STOP:
            await self._set(Status.STOPPED, self._stop_reason, note=None)
        elif command is Command.SHUTDOWN and self.status is not Status.STARTING:
            # Not WORKING any more, and saying so now spares the next start a write per session (its STARTING
            # is then no change); on a crash the next start records it instead.
            await self._set(Status.STARTING, None, note=SHUTDOWN_NOTE)
        elif command is Command.HAND_OVER:
            await self._set(Status.STARTING, None, note=HAND_OVER_NOTE)
        return False  # STOP, SHUTDOWN, HAND_OVER, LEASE_LOST

    async def _reset(self) -> None:
        """Quarantine (or reset by hand): keep a sealed backup, wipe the state, link again from a new QR code."""
        cause, self._reset_cause = self._reset_cause, API
        wiped = await self._repair.wipe(cause)
        self._scan_reason = Reason.CORRUPTED
        self.attempt = 0
        self._breaker.record_success()
        await self._set(Status.STARTING, Reason.CORRUPTED, clear_me=True, note=wiped.note, events=(wiped.event,))
        if wiped.quarantine:
            self._ctx.notifier.session_failed(self.session, Reason.CORRUPTED, wiped.note)

    def reset(self, cause: str) -> None:
        self._reset_cause = cause
        self.command(Command.RESET)

    def stop_idle(self) -> None:
        self._stop_reason = Reason.IDLE
        self.command(Command.STOP)

    def kick(self, why: str) -> None:
        self._kicked = why
        self.command(Command.KICK)

    def stuck(self, now: float, limit: float) -> str | None:
        """Why the session looks stuck, or None: WORKING on a connection that is no longer alive, STARTING (not
        backing off) or SCAN_QR_CODE without a valid QR code for longer than ``limit`` seconds."""
        if self.fault is not None:
            return None  # waiting for the database, not stuck
        if self.status is Status.WORKING and self.conn is not None and not self.conn.alive():
            return "the engine's connection stopped working"
        if self._awaiting_slot or self._engine_reconnecting:
            # queued behind other sessions' connections (a mass restart), or the engine reconnects by itself
            return None
        if self.status is Status.STARTING and not self._orders.pausing and now - self.progress_at > limit:
            return f"stuck in STARTING for {now - self.progress_at:.1f}s"
        if self.status is Status.SCAN_QR_CODE:
            since = max(self.qr.expires_at if self.qr is not None else 0.0, self.progress_at)
            if now - since > limit:
                return f"no QR code for {now - since:.1f}s"
        return None

    def idle(self, now: float, limit: float) -> bool:
        return bool(self.session.config.get("idle_stop")) and (
            self.observed()[0] is Status.WORKING and now - self.last_activity > limit
        )

    async def _after(self, outcome: _Ended | _Failed) -> bool:
        """Decide what follows a connection that ended or failed; False when the runner must end (True also when a
        back-off was cut short by a command, which the loop then takes)."""
        self.qr = None
        if isinstance(outcome, _Failed):
            return await self._retry(outcome.error)
        event = outcome.event
        if isinstance(event, Disconnected):
            if isinstance(event.error, LeaseLost | StoreUnavailable):
                raise event.error  # not the connection's failure: no attempt counted
            if event.reason == "qr_timeout":
                self._qr_rounds += 1
                if self._qr_rounds >= self._ctx.settings.qr_rounds:
                    await self._set(Status.FAILED, Reason.QR_TIMEOUT, note="no phone linked in time; start again")
                    return False
                return True
            if not event.retryable:
                await self._set(Status.FAILED, Reason.ENGINE_ERROR, note=event.reason)
                return False
            if self._connected_at is not None and self._ctx.clock() - self._connected_at >= STABLE_AFTER:
                self.attempt = 0  # it had been working: start over from the first, short delay
                self._breaker.record_success()
            return await self._retry(event.reason)
        if isinstance(event, DeviceStateDamaged):
            await self._repair.device_damaged(event)
            return True  # connect again, or the quarantine it ordered
        if isinstance(event, LoggedOut):
            await self.vault().wipe()
            await fail_queued(self._ctx.messages, self.session, f"the session logged out ({event.reason})")
            await self._set(Status.FAILED, Reason.LOGGED_OUT, clear_me=True, note=f"logged out ({event.reason})")
        elif isinstance(event, Replaced):
            await self._set(Status.FAILED, Reason.CONFLICT, note="another connection took over this device")
        elif isinstance(event, TemporarilyBanned):
            await self._set(Status.FAILED, Reason.BANNED, note=f"temporarily banned until {event.until}")
        return False

    async def _retry(self, error: str) -> bool:
        self.attempt += 1
        opened = self._breaker.record_failure()
        self._ctx.stats.count_reconnect(opened)
        if self.attempt >= self._ctx.settings.max_attempts:
            await self._set(Status.FAILED, Reason.MAX_RETRIES, note=error)
            return False
        delay = max(self._backoff.delay(self.attempt), self._breaker.remaining())
        reason = Reason.CIRCUIT_OPEN if self._breaker.remaining() > 0 else None
        self.log.warning("attempt %d failed (%s); next in %.2fs", self.attempt, error, delay)
        await self._set(
            Status.STARTING, reason, note=error, detail={"attempt": self.attempt, "retry_in": round(delay, 3)}
        )
        await self._orders.sleep(delay)
        return True

"""One session's life: connect, follow the engine's events, reconnect with backoff, stop when told.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from wagate.domain import payloads
from wagate.domain.events import Event, EventType
from wagate.domain.sessions import Lease, Reason, Session, Status, StatusChange
from wagate.engines.base import (
    Connected,
    Connection,
    ContactStateDamaged,
    ContactsUpdated,
    DecryptFailed,
    DeviceStateDamaged,
    Disconnected,
    Engine,
    EngineConnectError,
    EngineContext,
    EngineEvent,
    EngineNotice,
    EngineUnavailable,
    GroupsUpdated,
    LoggedOut,
    MessageAck,
    MessageReceived,
    Paired,
    PairingCode,
    QrCode,
    Reconnecting,
    Replaced,
    StateChanges,
    TemporarilyBanned,
)
from wagate.errors import LeaseLost, StoreUnavailable
from wagate.logs import session_var, tenant_var
from wagate.store.vault import Vault
from wagate.supervisor.backoff import Backoff, CircuitBreaker
from wagate.supervisor.backups import take_backup
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.corruption import CorruptionGuard, Verdict
from wagate.supervisor.damage import restore_from_backup
from wagate.supervisor.inbound import Inbound
from wagate.supervisor.outbound import OutboundSender, fail_queued

log = logging.getLogger("wagate.session")

# A connection that drops sooner than this after connecting counts as a failed attempt, so that a connect-then-drop
# loop (a flapping network, a server that accepts and closes) still backs off and trips the breaker.
STABLE_AFTER = 10.0
SHUTDOWN_NOTE = "the gateway stopped; the session reconnects when it runs again"
STORE_NOTE = "disconnected while the database refuses writes ({}); it reconnects once they go through again"
HAND_OVER_NOTE = "handed over to another worker, to spread the sessions; it reconnects there"
QUARANTINE_NOTES = {  # by the cause of a quarantine
    "corruption": "quarantined: messages from many contacts failed to decrypt; link the phone again",
    "damaged_record": (
        "quarantined: its stored credentials are damaged and no backup of this link holds them; link the phone again"
    ),
    "damaged_key": "quarantined: its stored data key is damaged, so none of its credentials open; link again",
}


class Command(IntEnum):
    """What the runner is asked to do; a stronger command wins over a weaker pending one."""

    KICK = 0  # the health monitor found the session stuck: reconnect through the normal backoff
    RESTART = 1
    HAND_OVER = 2  # this worker runs more than its share: end here, another worker takes the session
    RESET = 3
    LOGOUT = 4
    STOP = 5
    DELETE = 6
    SHUTDOWN = 7
    LEASE_LOST = 8


@dataclass(frozen=True, slots=True)
class _Ended:
    event: EngineEvent


@dataclass(frozen=True, slots=True)
class _Failed:
    error: str


class _Interrupted:
    pass


class SessionRunner:
    def __init__(self, ctx: RunnerContext, session: Session, lease: Lease, engine: Engine) -> None:
        self._ctx = ctx
        self.session = session
        self.lease = lease
        self.engine = engine
        self.generation = session.generation
        self.status = session.status
        self._reason = session.reason
        self._note = session.note
        self.qr: QrCode | None = None
        self.pairing_code: str | None = None
        self.conn: Connection | None = None
        self.sender: OutboundSender | None = None
        self.attempt = 0
        self.last_activity = ctx.clock()
        settings = ctx.settings
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap, ctx.rng)
        self._breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset, ctx.clock)
        self._command: Command | None = None
        self.handing_over = False  # told to end here so that another worker takes the session
        self._ended: EngineEvent | None = None  # the closing event of the current connection
        self._wakeup: asyncio.Future[None] | None = None  # resolved by a command, a closing event, a connect's end
        self._connected_at: float | None = None
        self._qr_rounds = 0
        self.guard = CorruptionGuard(ctx.corruption)
        self._inbound = Inbound(ctx, self)
        self._reset_cause = "api"  # why a RESET command came: "api", "corruption", "damaged_record", "damaged_key"
        self._restored = False  # damaged credentials were put back from a backup since the last connection
        self._scan_reason: Reason | None = None  # shown with SCAN_QR_CODE after a quarantine
        self._stop_reason = Reason.USER
        self._kicked = ""
        self._pausing = False
        self._awaiting_slot = False
        self._ending = False  # told to end (stop, shut down, hand over...): ends even when its last write fails
        self.fault: StoreUnavailable | None = None  # the database refused a write: disconnected until it takes one
        self._said = False  # a status of this runner's is recorded (until then its row is an earlier owner's)
        self.worked = False  # the current run got the session WORKING
        self._engine_reconnecting = False  # the engine lost its socket and reconnects by itself
        self.progress_at = ctx.clock()
        interval = settings.backup_interval
        # Scheduled backups start spread over one interval, so that a restart does not back up everything at once.
        self.last_backup_at = ctx.clock() - ctx.rng.uniform(0, interval) if interval else 0.0
        self.log = logging.LoggerAdapter(log, {"session_name": session.name})
        self.task: asyncio.Task[None] | None = None

    def vault(self) -> Vault:
        """The session's auth state, fenced by this runner's lease."""
        return self._ctx.vault(self.session, self.lease.epoch)

    # control ---------------------------------------------------------------------------------------------------

    def command(self, command: Command, session: Session | None = None) -> None:
        if session is not None:
            self.session = session
            self.generation = session.generation
        if self._command is None or command > self._command:
            self._command = command
        self._wake()

    def _wake(self, _: object = None) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _wait_until(self, done: Callable[[], bool]) -> None:
        """Until ``done()`` or a command; woken by ``_wake`` (one future per wait rather than a task per thing
        waited for: ten thousand sessions wait at once)."""
        while not done() and self._command is None:
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    def _take_command(self) -> Command | None:
        command, self._command = self._command, None
        return command

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
        if not self._said:
            return Status.STARTING, None, None
        return self.status, self._reason, self._note

    async def until(self, done: asyncio.Future[None]) -> None:
        """Wait for ``done`` (the database taking writes again), or for a command."""
        done.add_done_callback(self._wake)
        try:
            await self._wait_until(done.done)
        finally:
            done.remove_done_callback(self._wake)

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (before running again), or for a command."""
        await self._pause(seconds)

    async def give_up(self, failures: int) -> None:
        """Record FAILED after ``failures`` failed runs in a row (best effort: the store may be what fails)."""
        note = f"internal error, {failures} times in a row; see the gateway's log"
        try:
            await self._set(Status.FAILED, Reason.ENGINE_ERROR, note=note)
        except Exception as exc:  # said, not raised: the lease goes back, and a later reconcile runs it again
            self.log.error("could not record FAILED after %d failed runs: %s: %s", failures, type(exc).__name__, exc)

    async def _loop(self) -> None:
        while True:
            command = self._take_command()
            if command is not None and not await self._obey(command):
                return
            wait = self._breaker.remaining()
            if wait > 0 and not await self._pause(wait):
                continue  # interrupted: the command is taken at the top
            await self._set(Status.STARTING, None, note=self._note)
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
        )
        conn = self.engine.open(ctx)
        self.conn = conn
        connecting = asyncio.ensure_future(self._connect(conn))
        connecting.add_done_callback(self._wake)
        try:
            await self._wait_until(connecting.done)
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
        await self._wait_until(lambda: self._ended is not None)
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
        cause, self._reset_cause = self._reset_cause, "api"
        quarantine = cause != "api"
        backup = await take_backup(self._ctx, self.session, self.lease.epoch, "corrupted" if quarantine else "reset")
        await self.vault().wipe()
        await fail_queued(self._ctx.messages, self.session, "the session was reset and must be linked again")
        kept = backup.id if backup else None
        if quarantine:
            self._ctx.stats.quarantines += 1
            why = payloads.Cause.CORRUPTION if cause == "corruption" else payloads.Cause.DAMAGED_RECORD
            payload = payloads.quarantined(why, kept, data_key=cause == "damaged_key")
            event = self._event(EventType.SESSION_CORRUPTED, payload)
            note = QUARANTINE_NOTES[cause]
        else:
            event = self._event(EventType.SESSION_RESET, payloads.session_reset(kept))
            note = "reset by request; link the phone again"
        self.log.warning("session state wiped (%s); backup %s kept", cause, kept)
        self._scan_reason = Reason.CORRUPTED
        self.guard.clear()
        self.attempt = 0
        self._breaker.record_success()
        await self._set(Status.STARTING, Reason.CORRUPTED, clear_me=True, note=note, events=(event,))
        if quarantine:
            self._ctx.notifier.session_failed(self.session, Reason.CORRUPTED, note)

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
        if self.status is Status.STARTING and not self._pausing and now - self.progress_at > limit:
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
            return await self._device_damaged(event)
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
        await self._pause(delay)
        return True

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless a command arrives; True when the sleep ran its course."""
        self._pausing = True
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._wait_until(lambda: False)  # returns only when a command comes
                return False
            return True
        finally:
            self._pausing = False

    # events ----------------------------------------------------------------------------------------------------

    def _event(self, kind: EventType, payload: dict[str, Any]) -> Event:
        return self._inbound.event(kind, payload)

    async def _on_events(self, events: Sequence[EngineEvent], state: StateChanges | None = None) -> None:
        """Several events at once (a batch of messages): what they report, and the auth-state changes that go with
        them, commit in one transaction."""
        received = [e for e in events if isinstance(e, MessageReceived)]
        notices = [e for e in events if isinstance(e, EngineNotice)]
        if received or notices or state:
            await self._inbound.messages(received, notices, state)
        acks = [e for e in events if isinstance(e, MessageAck)]
        if acks:
            await self._inbound.receipts(acks)
        for event in events:
            if not isinstance(event, MessageReceived | EngineNotice | MessageAck):
                await self._on_event(event)

    def _start_sender(self) -> None:
        if self.sender is None and self.conn is not None:
            self.sender = OutboundSender(self._ctx, self, self.conn)
            self.sender.start(idle=self._ctx.outbox.known_empty(self.session.id))

    async def _stop_sender(self) -> None:
        sender, self.sender = self.sender, None
        if sender is not None:
            await sender.stop()

    async def _on_event(self, event: EngineEvent) -> None:
        self.progress_at = self._ctx.clock()  # the engine is doing something: not stuck
        if event.closing:
            self._ended = event
            self._wake()
        elif isinstance(event, QrCode):
            self.qr = event
            qr_event = self._event(EventType.SESSION_QR, payloads.session_qr(event.expires_at))
            if self.status is Status.SCAN_QR_CODE:
                await self._ctx.recorder.append([qr_event])
            else:
                note = self._note if self._scan_reason else None
                await self._set(Status.SCAN_QR_CODE, self._scan_reason, note=note, events=(qr_event,))
        elif isinstance(event, PairingCode):
            self.pairing_code = event.code
        elif isinstance(event, Paired):
            self.qr = None
            paired = self._event(EventType.SESSION_PAIRED, payloads.session_paired(event.me.as_dict()))
            await self._set(Status.STARTING, None, me=event.me.as_dict(), note="linked; connecting", events=(paired,))
        elif isinstance(event, Connected):
            self.qr = None
            self._connected_at = self.last_activity = self._ctx.clock()
            self._qr_rounds = 0
            self._scan_reason = None
            self._engine_reconnecting = False
            self._restored = False
            await self._set(Status.WORKING, None, me=event.me.as_dict(), note=None)
            self.worked = True
            self._start_sender()
        elif isinstance(event, Reconnecting):
            await self._stop_sender()
            self._engine_reconnecting = True
            await self._set(Status.STARTING, None, note=event.reason)
        elif isinstance(event, MessageReceived | MessageAck | EngineNotice):
            await self._on_events([event])
        elif isinstance(event, ContactsUpdated):
            await self._ctx.messages.put_contacts(self.session.tenant_id, self.session.id, event.contacts)
        elif isinstance(event, GroupsUpdated):
            await self._ctx.messages.put_groups(self.session.tenant_id, self.session.id, event.groups)
        elif isinstance(event, DecryptFailed):
            await self._decrypt_failed(event)
        elif isinstance(event, ContactStateDamaged):
            await self._contact_damaged(event)

    async def _decrypt_failed(self, event: DecryptFailed) -> None:
        self._ctx.stats.decrypt_failures += 1
        verdict = self.guard.record(event.contact, self._ctx.clock())
        if verdict is Verdict.QUARANTINE:
            self.log.warning("decryption failures across many contacts: quarantining the session")
            self.reset("corruption")
        elif verdict is Verdict.RESET_CONTACT and self.conn is not None:
            self.log.info("repeated decryption failures from one contact: resetting that contact's session")
            try:
                await self.conn.reset_contact(event.contact)
                self._ctx.stats.contact_resets += 1
            except EngineUnavailable as exc:
                self.log.warning("cannot reset the contact's session: %s", exc)

    async def _device_damaged(self, event: DeviceStateDamaged) -> bool:
        """The session's own credentials do not open: put them back from a backup of this link and connect again
        (no new scan), or, when none holds them (or they fail again at once), quarantine. True: the loop goes on."""
        ctx = self._ctx
        ctx.stats.damaged_records += 1
        restored = None
        if await ctx.vaults.key_damaged(self.session.tenant_id, self.session.id):
            # Its data key itself does not open: no record of it can be read or written back, so no backup helps.
            self.log.warning("the session's stored data key is damaged: none of its stored credentials open")
            self.reset("damaged_key")
            return True
        if not self._restored:
            restored = await restore_from_backup(
                ctx.backups, ctx.vaults.keyring, self.vault(), self.session, event.records
            )
        if restored is None:
            self.log.warning("the session's stored credentials are damaged and no backup of this link holds them")
            self.reset("damaged_record")
            return True
        self._restored = True
        self.log.warning("the session's stored credentials were damaged; put back from backup %s", restored.id)
        await ctx.recorder.append([self._event(EventType.SESSION_CORRUPTED, payloads.restored(restored.id))])
        return True

    async def _contact_damaged(self, event: ContactStateDamaged) -> None:
        """The engine found a contact's stored state damaged and started that contact over: the session runs on."""
        self._ctx.stats.damaged_records += 1
        self.log.warning("a contact's stored encryption state was damaged; that contact's session starts over")
        corrupted = self._event(EventType.SESSION_CORRUPTED, payloads.contact_reset(event.contact))
        await self._ctx.recorder.append([corrupted])

    async def _set(
        self,
        status: Status,
        reason: Reason | None,
        *,
        me: dict[str, Any] | None = None,
        clear_me: bool = False,
        note: str | None = None,
        detail: dict[str, Any] | None = None,
        events: tuple[Event, ...] = (),
    ) -> None:
        """Record a status change (a real change, or a new attempt's detail), fenced by the lease; raises LeaseLost
        when refused."""
        unchanged = (status, reason, note) == (self.status, self._reason, self._note)
        if unchanged and me is None and not clear_me and not events and detail is None:
            self._said = True  # the row says so already
            return
        change = StatusChange(
            tenant_id=self.session.tenant_id,
            session_id=self.session.id,
            owner=self.lease.owner or "",
            epoch=self.lease.epoch,
            status=status,
            reason=reason,
            me=me,
            clear_me=clear_me,
            note=note,
            detail=detail,
            events=events,
        )
        session = await self._ctx.recorder.record(change)
        if session is None:
            raise LeaseLost(f"session {self.session.id}: status write refused")
        if status is not self.status:
            self.progress_at = self._ctx.clock()
            if status is Status.FAILED:
                self._ctx.notifier.session_failed(session, reason, note)
        if status is not self.status or reason is not self._reason:
            failed = status is Status.FAILED  # the session stops trying: said at WARNING, with why
            self.log.log(
                logging.WARNING if failed else logging.INFO,
                "%s -> %s%s%s",
                self.status.value,
                status.value,
                f" ({reason.value})" if reason else "",
                f": {note}" if failed and note else "",
            )
        self.session, self.status, self._reason, self._note = session, status, reason, note
        self._said = True

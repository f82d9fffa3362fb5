"""One session's repair path: decryption failures counted (one contact reset, or the session quarantined), damaged
stored records put back from a backup of the same link or the session quarantined, and the wipe a quarantine (or a
reset by hand) does: backed up, wiped, its queue failed, to be linked again from a new QR code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from wagate.domain import payloads
from wagate.domain.events import Event, EventType
from wagate.domain.sessions import Lease, Session
from wagate.engines.base import (
    Connection,
    ContactStateDamaged,
    DecryptFailed,
    DeviceStateDamaged,
    EngineUnavailable,
)
from wagate.store.vault import Vault
from wagate.supervisor.backups import take_backup
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.corruption import CorruptionGuard, Verdict
from wagate.supervisor.damage import restore_from_backup
from wagate.supervisor.outbound import fail_queued

__all__ = ["API", "QUARANTINE_NOTES", "Repair", "Repaired", "Wiped"]

API = "api"  # a reset by hand; every other cause is a quarantine
QUARANTINE_NOTES = {  # by the cause of a quarantine
    "corruption": "quarantined: messages from many contacts failed to decrypt; link the phone again",
    "damaged_record": (
        "quarantined: its stored credentials are damaged and no backup of this link holds them; link the phone again"
    ),
    "damaged_key": "quarantined: its stored data key is damaged, so none of its credentials open; link again",
}


class Repaired(Protocol):
    """What the repair path sees of the runner it serves."""

    @property
    def session(self) -> Session: ...

    @property
    def lease(self) -> Lease: ...

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    @property
    def conn(self) -> Connection | None: ...

    def vault(self) -> Vault: ...

    def event(self, kind: EventType, payload: dict[str, Any]) -> Event: ...

    def reset(self, cause: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Wiped:
    """A wipe done: the event that reports it, the session's note, and whether it was a quarantine."""

    event: Event
    note: str
    quarantine: bool


class Repair:
    """One runner's repair path."""

    def __init__(self, ctx: RunnerContext, runner: Repaired) -> None:
        self._ctx = ctx
        self._runner = runner
        self.guard = CorruptionGuard(ctx.corruption)
        self.restored = False  # damaged credentials were put back from a backup since the last connection

    async def decrypt_failed(self, event: DecryptFailed) -> None:
        runner = self._runner
        self._ctx.stats.decrypt_failures += 1
        verdict = self.guard.record(event.contact, self._ctx.clock())
        if verdict is Verdict.QUARANTINE:
            runner.log.warning("decryption failures across many contacts: quarantining the session")
            runner.reset("corruption")
        elif verdict is Verdict.RESET_CONTACT and runner.conn is not None:
            runner.log.info("repeated decryption failures from one contact: resetting that contact's session")
            try:
                await runner.conn.reset_contact(event.contact)
                self._ctx.stats.contact_resets += 1
            except EngineUnavailable as exc:
                runner.log.warning("cannot reset the contact's session: %s", exc)

    async def device_damaged(self, event: DeviceStateDamaged) -> None:
        """The session's own credentials do not open: put them back from a backup of this link (the runner connects
        again, no new scan), or, when none holds them (or they fail again at once), quarantine."""
        ctx, runner = self._ctx, self._runner
        session = runner.session
        ctx.stats.damaged_records += 1
        if await ctx.vaults.key_damaged(session.tenant_id, session.id):
            # Its data key itself does not open: no record of it can be read or written back, so no backup helps.
            runner.log.warning("the session's stored data key is damaged: none of its stored credentials open")
            runner.reset("damaged_key")
            return
        restored = None
        if not self.restored:
            restored = await restore_from_backup(
                ctx.backups, ctx.vaults.keyring, runner.vault(), session, event.records
            )
        if restored is None:
            runner.log.warning("the session's stored credentials are damaged and no backup of this link holds them")
            runner.reset("damaged_record")
            return
        self.restored = True
        runner.log.warning("the session's stored credentials were damaged; put back from backup %s", restored.id)
        await ctx.recorder.append([runner.event(EventType.SESSION_CORRUPTED, payloads.restored(restored.id))])

    async def contact_damaged(self, event: ContactStateDamaged) -> None:
        """The engine found a contact's stored state damaged and started that contact over: the session runs on."""
        self._ctx.stats.damaged_records += 1
        self._runner.log.warning("a contact's stored encryption state was damaged; that contact's session starts over")
        corrupted = self._runner.event(EventType.SESSION_CORRUPTED, payloads.contact_reset(event.contact))
        await self._ctx.recorder.append([corrupted])

    async def wipe(self, cause: str) -> Wiped:
        """Keep a sealed backup of what still opens, wipe the state, fail the queue; what reports it."""
        ctx, runner = self._ctx, self._runner
        quarantine = cause != API
        backup = await take_backup(ctx, runner.session, runner.lease.epoch, "corrupted" if quarantine else "reset")
        await runner.vault().wipe()
        await fail_queued(ctx.messages, runner.session, "the session was reset and must be linked again")
        kept = backup.id if backup else None
        self.guard.clear()
        runner.log.warning("session state wiped (%s); backup %s kept", cause, kept)
        if not quarantine:
            event = runner.event(EventType.SESSION_RESET, payloads.session_reset(kept))
            return Wiped(event, "reset by request; link the phone again", quarantine=False)
        ctx.stats.quarantines += 1
        why = payloads.Cause.CORRUPTION if cause == "corruption" else payloads.Cause.DAMAGED_RECORD
        payload = payloads.quarantined(why, kept, data_key=cause == "damaged_key")
        return Wiped(runner.event(EventType.SESSION_CORRUPTED, payload), QUARANTINE_NOTES[cause], quarantine=True)

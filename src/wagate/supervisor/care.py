"""What is done to a session's stored state on request (the API's and the command line's): reset, restore, logout,
and, before a delete, its engine's local copy forgotten.

A session that runs on this worker is told to do it itself (its runner carries out the command); one that runs
nowhere is done here, under its lease, held for the moment (refused while another worker holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from wagate.domain import payloads
from wagate.domain.events import Event, EventType
from wagate.domain.sessions import Desired, Lease, Reason, Session, Status, StatusChange
from wagate.engines.base import EngineUnavailable
from wagate.engines.registry import EngineRegistry
from wagate.errors import ConfigError
from wagate.ids import BackupId, SessionId
from wagate.store.contracts.backups import BackupStore
from wagate.supervisor.backups import take_backup
from wagate.supervisor.commands import Command
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.leases import HeldLeases
from wagate.supervisor.outbound import fail_queued
from wagate.supervisor.runner import SessionRunner

__all__ = ["STOP_TIMEOUT", "SessionCare", "record_held"]

STOP_TIMEOUT = 6.0  # seconds a runner is given to end when told to


async def record_held(
    ctx: RunnerContext, session: Session, lease: Lease, status: Status, reason: Reason | None, **more: Any
) -> None:
    """Record a status for a session this supervisor holds the lease of, outside any runner."""
    await ctx.recorder.record(
        StatusChange(session.tenant_id, session.id, ctx.owner, lease.epoch, status, reason, **more)
    )


class SessionCare:
    """Reset, restore, logout and forget, for the sessions of one supervisor."""

    def __init__(
        self,
        ctx: RunnerContext,
        backups: BackupStore,
        engines: EngineRegistry,
        leases: HeldLeases,
        runners: Mapping[SessionId, SessionRunner],
    ) -> None:
        self._ctx = ctx
        self._backups = backups
        self._engines = engines
        self._leases = leases
        self._runners = runners

    async def reset(self, session: Session) -> None:
        """By hand, what a quarantine does: back up, wipe, and (when it runs) link again from a new QR code."""
        runner = self._runners.get(session.id)
        if runner is not None:
            runner.reset("api")
            return
        ctx = self._ctx
        async with self._leases.held(session) as lease:
            backup = await take_backup(ctx, session, lease.epoch, "reset")
            await ctx.vault(session, lease.epoch).wipe()
            await fail_queued(ctx.messages, session, "the session was reset and must be linked again")
            await self.forget_local(session)
            event = Event.new(
                EventType.SESSION_RESET,
                session.tenant_id,
                session.id,
                session.name,
                ctx.clock(),
                payloads.session_reset(backup.id if backup else None),
            )
            await record_held(ctx, session, lease, session.status, session.reason, clear_me=True, events=(event,))

    async def restore(self, session: Session, backup_id: BackupId) -> int:
        """Replace a stopped session's auth state with a backup's; refused while it runs anywhere."""
        if session.id in self._runners or session.desired is Desired.RUNNING or session.status is not Status.STOPPED:
            raise EngineUnavailable("stop the session first: a backup restores only into a stopped session")
        payload = await self._backups.payload(session.tenant_id, session.id, backup_id)
        if payload is None:
            raise LookupError(backup_id)
        async with self._leases.held(session) as lease:
            return await self._ctx.vault(session, lease.epoch).import_bundle(payload)

    async def logout(self, session: Session) -> None:
        """Unlink the device and wipe the credentials; a running session starts over with a new QR code."""
        runner = self._runners.get(session.id)
        if runner is not None and not runner.winding_down():
            runner.command(Command.LOGOUT)
            return
        if runner is not None and runner.task is not None:
            # Stopping (a logout right after a stop): it would not log out now; let it end, then log out here.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(runner.task), STOP_TIMEOUT)
        ctx = self._ctx
        async with self._leases.held(session) as lease:
            await take_backup(ctx, session, lease.epoch, "logout")
            await ctx.vault(session, lease.epoch).wipe()
            await fail_queued(ctx.messages, session, "the session logged out")
            await self.forget_local(session)
            await record_held(ctx, session, lease, session.status, session.reason, clear_me=True)

    async def forget(self, session: Session) -> None:
        """Before a delete: log the device out if it runs here, wait for its runner to end, and remove what its
        engine keeps outside the vault."""
        runner = self._runners.get(session.id)
        if runner is not None and runner.task is not None:
            runner.command(Command.DELETE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(runner.task), STOP_TIMEOUT)
        await self.forget_local(session)

    async def forget_local(self, session: Session) -> None:
        """The engine's local copy of a session's credentials goes with the vault's (not left in a file)."""
        try:
            engine = self._engines.get(session.engine)
        except ConfigError:
            return  # an engine this build cannot load kept nothing here
        await engine.forget(session.id)

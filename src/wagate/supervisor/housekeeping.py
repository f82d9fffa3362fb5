"""The supervisor's periodic jobs over this worker's sessions: the health monitor (stuck sessions reconnected, idle
ones stopped, scheduled backups) and the sweep of local files of deleted sessions. Retention, which is not about
this worker's sessions, is the node's (``wagate.runtime.retention``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from wagate.config import Settings
from wagate.domain.sessions import Desired, Status
from wagate.engines.registry import EngineRegistry
from wagate.ids import SessionId
from wagate.store.base import Store
from wagate.supervisor.backups import take_backup
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.runner import SessionRunner

__all__ = ["Housekeeping"]

log = logging.getLogger("wagate.supervisor")


class Housekeeping:
    """The periodic jobs of one supervisor, over the runners it keeps."""

    def __init__(
        self,
        ctx: RunnerContext,
        settings: Settings,
        store: Store,
        engines: EngineRegistry,
        runners: Mapping[SessionId, SessionRunner],
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._store = store
        self._engines = engines
        self._runners = runners

    async def check_health(self) -> None:
        """The health monitor: reconnect stuck sessions (through their backoff), stop idle ones that opted in, take
        scheduled backups of working ones."""
        ctx, settings = self._ctx, self._settings
        now = ctx.clock()
        for runner in list(self._runners.values()):
            problem = runner.stuck(now, settings.stuck_timeout)
            if problem is not None:
                runner.log.warning("health monitor: %s; reconnecting", problem)
                ctx.stats.stuck_restarts += 1
                runner.kick(problem)
            elif runner.idle(now, settings.idle_timeout):
                runner.log.info("health monitor: no activity for %.0fs; stopping (idle)", now - runner.last_activity)
                ctx.stats.idle_stops += 1
                session = runner.session
                await self._store.sessions.set_desired(
                    session.tenant_id, session.name, Desired.STOPPED, actor="monitor"
                )
                runner.stop_idle()
            elif (
                settings.backup_interval
                and runner.observed()[0] is Status.WORKING
                and now - runner.last_backup_at >= settings.backup_interval
            ):
                runner.last_backup_at = now
                await take_backup(ctx, runner.session, runner.lease.epoch, "scheduled")

    async def sweep_local(self) -> int:
        """Forget what the engines keep on this machine of sessions that no longer exist (deleted through another
        worker, or while this one was down): their local credentials must not outlive them. Sessions that exist
        keep their files (a cache the vault can rebuild), and so does anything running here."""
        removed = 0
        runners = self._runners
        for engine in self._engines.loaded():
            candidates = [i for i in await engine.local_sessions() if SessionId(i) not in runners]
            if not candidates:
                continue
            existing = await self._store.sessions.existing_all_tenants(candidates)
            for session_id in candidates:
                if session_id not in existing and SessionId(session_id) not in runners:
                    await engine.forget(session_id)
                    removed += 1
        if removed:
            log.info("removed the local files of %d deleted session(s)", removed)
        return removed

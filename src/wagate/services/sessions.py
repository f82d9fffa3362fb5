"""A tenant's sessions, as the API routes and the command line both handle them: create, list, get, configure,
start, stop, restart, log out, reset, restore, delete.

Start, stop and restart record what the tenant wants (``desired``); the supervisor makes it so, at once when it runs
in this process, at the next reconcile of a worker otherwise. What the service shows of a session is how it is, not
what its row last said (:meth:`SessionService.seen`): the one read path for the API, the command line and the
server status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from wagate.domain.sessions import NAME_PATTERN, Desired, NewSession, Session, Status, as_seen
from wagate.engines.base import EngineUnavailable
from wagate.engines.registry import engine_names
from wagate.errors import AlreadyExists, Conflict, NotFound, ServiceUnavailable, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import BackupId, TenantId
from wagate.supervisor.supervisor import Supervisor

__all__ = ["SessionService"]

# The statuses a row may claim for a worker that no longer runs the session (as_seen corrects them).
_SPOKEN_FOR = (Status.WORKING, Status.SCAN_QR_CODE)


class SessionService:
    """The sessions of the tenants of one gateway; ``supervisor`` is this process's, None where it runs none (an
    API-only process, the command line). ``actor`` names the caller in the sessions' history."""

    def __init__(self, gateway: Gateway, supervisor: Supervisor | None, *, actor: str) -> None:
        self._gateway = gateway
        self._store = gateway.store
        self._supervisor = supervisor
        self._actor = actor

    # reading -----------------------------------------------------------------------------------------------------

    async def find(self, tenant_id: TenantId, name: str) -> Session:
        """The tenant's session by name, as its row says; NotFound (also for names that cannot exist)."""
        session = await self._store.sessions.get(tenant_id, name) if NAME_PATTERN.fullmatch(name) else None
        if session is None:
            raise NotFound(f"no session named {name!r}", code="session_not_found")
        return session

    async def seen(self, sessions: Sequence[Session]) -> list[Session]:
        """The sessions as they are, not as their rows last said: one this process runs as its runner knows it (the
        database may have refused to record it), and a row that speaks for a worker which no longer holds the
        session's lease (it died, or hangs) does not show the session as WORKING."""
        leases = await self._store.leases.held([s.id for s in sessions])
        now = self._gateway.clock()
        seen = []
        for session in sessions:
            runner = self._supervisor.runners.get(session.id) if self._supervisor is not None else None
            if runner is not None:
                status, reason, note = runner.observed()
                seen.append(replace(session, status=status, reason=reason, note=note))
                continue
            lease = leases.get(session.id)
            held_since = lease.acquired_at if lease is not None and lease.live(now) else None
            seen.append(as_seen(session, held_since=held_since))
        return seen

    async def get(self, tenant_id: TenantId, name: str) -> Session:
        (session,) = await self.seen([await self.find(tenant_id, name)])
        return session

    async def list(self, tenant_id: TenantId, *, include_stopped: bool = False) -> list[Session]:
        """The tenant's sessions; STOPPED ones only with ``include_stopped`` or when they should run."""
        sessions = await self._store.sessions.list_sessions(tenant_id)
        listed = [
            s for s in sessions if include_stopped or s.status is not Status.STOPPED or s.desired is Desired.RUNNING
        ]
        return await self.seen(listed)

    async def count_by_status(self) -> Counter[tuple[Status, Desired]]:
        """Every tenant's sessions by (status, desired), each as :meth:`seen` shows it."""
        counts: Counter[tuple[Status, Desired]] = Counter(
            {(Status(status), Desired(desired)): n for (status, desired), n in (await self._count_rows()).items()}
        )
        running = self._supervisor.runners if self._supervisor is not None else {}
        # Only rows that speak for a worker, or that a runner here may know better, can be seen otherwise.
        candidates = [
            s
            for s in await self._store.sessions.list_to_reconcile_all_tenants()
            if s.status in _SPOKEN_FOR or s.id in running
        ]
        for row, seen in zip(candidates, await self.seen(candidates), strict=True):
            if seen.status is not row.status:
                counts[(row.status, row.desired)] -= 1
                counts[(seen.status, seen.desired)] += 1
        return +counts  # without the statuses left at zero

    async def _count_rows(self) -> dict[tuple[str, str], int]:
        return await self._store.sessions.count_by_status_all_tenants()

    # changing ----------------------------------------------------------------------------------------------------

    async def create(
        self, tenant_id: TenantId, name: str, *, engine: str | None, config: dict[str, Any], start: bool
    ) -> Session:
        engine = engine or self._gateway.settings.default_engine
        if engine not in engine_names():
            raise Unprocessable(
                f"unknown engine {engine!r}; available: {', '.join(engine_names())}", code="unknown_engine"
            )
        tenant = await self._store.tenants.get(tenant_id)
        if tenant is None:
            raise NotFound("the tenant no longer exists", code="tenant_not_found")
        desired = Desired.RUNNING if start else Desired.STOPPED
        new = NewSession(tenant_id=tenant_id, name=name, engine=engine, config=config, desired=desired)
        try:
            session = await self._store.sessions.create(new, quotas=self._gateway.quotas_for(tenant), actor=self._actor)
        except AlreadyExists:
            raise Unprocessable(f"a session named {name!r} already exists", code="session_exists") from None
        await self._reconcile(session)
        return session

    async def update_config(self, tenant_id: TenantId, name: str, config: dict[str, Any]) -> Session:
        """Replace the session's config; a running session restarts with it."""
        await self.find(tenant_id, name)
        updated = await self._store.sessions.update_config(tenant_id, name, config, actor=self._actor)
        (seen,) = await self.seen([_found(updated, name)])
        return seen

    async def delete(self, tenant_id: TenantId, name: str) -> None:
        """Stop the session (logged out if it runs here) and delete it with its data."""
        session = await self.find(tenant_id, name)
        if self._supervisor is not None:
            await self._supervisor.forget(session)
        if not await self._store.sessions.delete(tenant_id, name):
            raise NotFound(f"no session named {name!r}", code="session_not_found")
        self._gateway.vaults.forget(session.id)

    async def start(self, tenant_id: TenantId, name: str) -> Session:
        """Ask for the session to run (also after it FAILED)."""
        return await self._set_desired(tenant_id, name, Desired.RUNNING)

    async def stop(self, tenant_id: TenantId, name: str) -> Session:
        """Ask for the session to stop; its credentials are kept."""
        return await self._set_desired(tenant_id, name, Desired.STOPPED)

    async def restart(self, tenant_id: TenantId, name: str) -> Session:
        """Restart the session; it runs afterwards, whatever it did before."""
        return await self._set_desired(tenant_id, name, Desired.RUNNING, restart=True)

    async def logout(self, tenant_id: TenantId, name: str) -> Session:
        """Unlink the phone and wipe the credentials; a running session shows a new QR code."""
        session = await self.find(tenant_id, name)
        try:
            await self._require_supervisor().logout(session)
        except EngineUnavailable as exc:
            raise Conflict(str(exc), code="not_here") from None
        return await self.get(tenant_id, name)

    async def reset(self, tenant_id: TenantId, name: str) -> Session:
        """Back up and wipe a corrupted session; a running one shows a new QR code."""
        session = await self.find(tenant_id, name)
        try:
            await self._require_supervisor().reset(session)
        except EngineUnavailable as exc:
            raise Conflict(str(exc), code="not_here") from None
        return await self.find(tenant_id, name)

    async def restore(self, tenant_id: TenantId, name: str, backup_id: BackupId) -> tuple[int, Session]:
        """Restore a backup into the stopped session: the records restored, and the session."""
        session = await self.find(tenant_id, name)
        try:
            count = await self._require_supervisor().restore(session, backup_id)
        except LookupError:
            raise NotFound(f"no backup {backup_id!r} of this session", code="backup_not_found") from None
        except EngineUnavailable as exc:
            raise Conflict(str(exc), code="session_running") from None
        return count, await self.find(tenant_id, name)

    async def _set_desired(self, tenant_id: TenantId, name: str, desired: Desired, *, restart: bool = False) -> Session:
        await self.find(tenant_id, name)
        changed = await self._store.sessions.set_desired(tenant_id, name, desired, actor=self._actor, restart=restart)
        session = _found(changed, name)
        await self._reconcile(session)
        (seen,) = await self.seen([session])
        return seen

    async def _reconcile(self, session: Session) -> None:
        """The supervisor of this process acts on the change at once; the others at their next reconcile."""
        if self._supervisor is not None:
            await self._supervisor.reconcile_one(session.tenant_id, session.id)

    def _require_supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise ServiceUnavailable("this gateway process does not run sessions", code="no_supervisor")
        return self._supervisor


def _found(session: Session | None, name: str) -> Session:
    if session is None:  # deleted between the lookup and the change
        raise NotFound(f"no session named {name!r}", code="session_not_found")
    return session

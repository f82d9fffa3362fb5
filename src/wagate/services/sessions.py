"""A tenant's sessions, as the API routes and the command line both handle them: create, list, get, configure,
start, stop, restart, log out, reset, restore, delete.

Start, stop and restart record what the tenant wants (``desired``); the supervisor makes it so, at once when it runs
in this process, at the next reconcile of a worker otherwise. What the service shows of a session is how it is, not
what its row last said (:meth:`SessionService.seen`): the one read path for the API, the command line and the
server status.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from wagate.domain.sessions import NAME_PATTERN, SECRET_MASK, Desired, Lease, NewSession, Session, Status, as_seen
from wagate.domain.webhooks import Webhook
from wagate.engines.base import EngineUnavailable
from wagate.engines.registry import engine_names
from wagate.errors import AlreadyExists, Conflict, NotFound, ServiceUnavailable, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import BackupId, SessionId, TenantId
from wagate.services.session_config import EndpointChanged, SessionConfigs, shown_config, split_config
from wagate.supervisor.supervisor import Supervisor

__all__ = ["SessionService", "SessionView", "generated_name"]

# The statuses a row may claim for a worker that no longer runs the session (as_seen corrects them).
_SPOKEN_FOR = (Status.WORKING, Status.SCAN_QR_CODE)


def generated_name() -> str:
    """WAHA's name for a session created without one: ``session_`` and a random UUID's 32 hex digits."""
    return f"session_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as answers show it: as it is (:meth:`SessionService.seen`), its config with its webhooks and
    secrets masked, the worker holding its lease, and when it last sent or received (known where it runs)."""

    session: Session
    config: dict[str, Any]
    worker: str | None
    activity: float | None


class SessionService:
    """The sessions of the tenants of one gateway; ``supervisor`` is this process's, None where it runs none (an
    API-only process, the command line). ``actor`` names the caller in the sessions' history; ``endpoint_changed``
    tells the webhook dispatchers that an endpoint of a session's config changed."""

    def __init__(
        self,
        gateway: Gateway,
        supervisor: Supervisor | None,
        *,
        actor: str,
        endpoint_changed: EndpointChanged | None = None,
    ) -> None:
        self._gateway = gateway
        self._store = gateway.store
        self._supervisor = supervisor
        self._actor = actor
        self._configs = SessionConfigs(gateway, endpoint_changed)
        # The leases as seen() read them, for describe() to show the same (and not read them again).
        self._leases: dict[SessionId, Lease | None] = {}

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
        leases = await self._leases_of(sessions, again=True)
        now = self._gateway.clock()
        seen = []
        for session in sessions:
            runner = self._supervisor.runners.get(session.id) if self._supervisor is not None else None
            if runner is not None:
                status, reason, note = runner.observed()
                # Who it is logged in as, from the newer of the two: the row read before may be older than the
                # runner's last write (WORKING from the runner, the row's ``me`` still empty, just after a scan),
                # or newer (a logout of a stopped session clears the row's ``me`` while its runner winds down).
                newer = runner.session if runner.session.updated_at > session.updated_at else session
                me = newer.me
                seen.append(replace(session, status=status, reason=reason, note=note, me=me))
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

    async def describe(self, sessions: Sequence[Session]) -> Sequence[SessionView]:
        """``sessions`` (as :meth:`seen` gives them) as answers show them."""
        if not sessions:
            return []
        leases = await self._leases_of(sessions, again=False)
        now = self._gateway.clock()
        endpoints: dict[TenantId, dict[str, list[Webhook]]] = {}
        for tenant_id in {s.tenant_id for s in sessions}:
            endpoints[tenant_id] = await self._configs.endpoints(tenant_id)
        views: list[SessionView] = []
        for session in sessions:
            lease = leases.get(session.id)
            runner = self._supervisor.runners.get(session.id) if self._supervisor is not None else None
            views.append(
                SessionView(
                    session=session,
                    config=shown_config(session.config, endpoints[session.tenant_id].get(session.name, [])),
                    worker=lease.owner if lease is not None and lease.live(now) else None,
                    activity=runner.last_activity if runner is not None else None,
                )
            )
        return views

    async def _leases_of(self, sessions: Sequence[Session], *, again: bool) -> dict[SessionId, Lease | None]:
        """The sessions' leases: read from the store (all of them ``again``, else those not read before)."""
        wanted = [s.id for s in sessions if again or s.id not in self._leases]
        if wanted:
            held = await self._store.leases.held(wanted)
            self._leases.update((session_id, held.get(session_id)) for session_id in wanted)
        return {s.id: self._leases[s.id] for s in sessions}

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
        self, tenant_id: TenantId, name: str | None, *, engine: str | None, config: dict[str, Any], start: bool
    ) -> Session:
        """Create a session (named as WAHA names it when ``name`` is None) with ``config`` as the API's model gave
        it: its ``webhooks`` become the session's endpoints, its proxy's password is kept sealed."""
        name = name or generated_name()
        engine = engine or self._gateway.settings.default_engine
        if engine not in engine_names():
            raise Unprocessable(
                f"unknown engine {engine!r}; available: {', '.join(engine_names())}", code="unknown_engine"
            )
        tenant = await self._store.tenants.get(tenant_id)
        if tenant is None:
            raise NotFound("the tenant no longer exists", code="tenant_not_found")
        row, hooks = split_config(config)
        if SessionConfigs.password_of(row) == SECRET_MASK:
            raise Unprocessable("config.proxy.password: ******** stands for a stored password", code="invalid_config")
        plan = await self._configs.plan_webhooks(tenant_id, name, hooks) if hooks is not None else None
        if await self._store.sessions.get(tenant_id, name) is not None:
            raise Unprocessable(f"a session named {name!r} already exists", code="session_exists")
        desired = Desired.RUNNING if start else Desired.STOPPED
        bare = SessionConfigs.without_password(row)
        new = NewSession(tenant_id=tenant_id, name=name, engine=engine, config=bare, desired=desired)
        try:
            session = await self._store.sessions.create(new, quotas=self._gateway.quotas_for(tenant), actor=self._actor)
        except AlreadyExists:
            raise Unprocessable(f"a session named {name!r} already exists", code="session_exists") from None
        try:
            if SessionConfigs.password_of(row) is not None:  # sealed with the session's own key, once it has one
                sealed = await self._configs.sealed(tenant_id, session.id, row, None)
                changed = await self._store.sessions.update_config(tenant_id, name, sealed, actor=self._actor)
                session = _found(changed, name)
            if plan is not None:
                await self._configs.apply(plan)
        except BaseException:
            await self._store.sessions.delete(tenant_id, name)  # nothing of a refused creation stays
            self._gateway.vaults.forget(session.id)
            raise
        await self._reconcile(session)
        return session

    async def update(
        self,
        tenant_id: TenantId,
        name: str,
        config: dict[str, Any],
        *,
        start: bool = False,
        stop: bool = False,
    ) -> Session:
        """Replace the session's config (a running session restarts with it; its webhooks change only when
        ``webhooks`` is given), then ask for it to run (``start``) or to stop (``stop``)."""
        if start and stop:
            raise Unprocessable("start and stop: one at most", code="invalid_request")
        session = await self.find(tenant_id, name)
        row, hooks = split_config(config)
        plan = await self._configs.plan_webhooks(tenant_id, name, hooks) if hooks is not None else None
        sealed = await self._configs.sealed(tenant_id, session.id, row, session.config)
        updated = _found(await self._store.sessions.update_config(tenant_id, name, sealed, actor=self._actor), name)
        if plan is not None:
            await self._configs.apply(plan)
        if start or stop:
            desired = Desired.RUNNING if start else Desired.STOPPED
            changed = await self._store.sessions.set_desired(tenant_id, name, desired, actor=self._actor)
            updated = _found(changed, name)
        await self._reconcile(updated)
        (seen,) = await self.seen([updated])
        return seen

    async def delete(self, tenant_id: TenantId, name: str) -> None:
        """Stop the session (logged out if it runs here) and delete it with its data and its webhooks."""
        session = await self.find(tenant_id, name)
        if self._supervisor is not None:
            await self._supervisor.forget(session)
        if not await self._store.sessions.delete(tenant_id, name):
            raise NotFound(f"no session named {name!r}", code="session_not_found")
        self._gateway.vaults.forget(session.id)
        await self._configs.drop_webhooks(tenant_id, name)

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

"""``/api/sessions``: create, read, configure, start, stop and delete a tenant's sessions.

Start and stop record what the tenant wants (``desired``); the supervisor makes it so. Another tenant's session is
a 404, exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from wagate.api.deps import GatewayDep, SupervisorDep, TenantDep
from wagate.api.schemas import SQL_INT_MAX, HistoryOut, SessionCreate, SessionOut, SessionUpdate, error_answers
from wagate.domain.sessions import NAME_PATTERN, Desired, NewSession, Session, Status, as_seen
from wagate.engines.base import EngineUnavailable
from wagate.engines.registry import engine_names
from wagate.errors import AlreadyExists, Conflict, NotFound, ServiceUnavailable, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.supervisor.supervisor import Supervisor

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=error_answers(401, 403, 503))

SessionName = Annotated[str, Path(description="the session's name", max_length=64)]
ACTOR = "api"


async def find_session(gateway: Gateway, tenant_id: TenantId, name: str) -> Session:
    """The tenant's session by name, or 404 (also for names that cannot exist)."""
    session = None
    if NAME_PATTERN.fullmatch(name):
        session = await gateway.store.sessions.get(tenant_id, name)
    if session is None:
        raise NotFound(f"no session named {name!r}", code="session_not_found")
    return session


async def shown(gateway: Gateway, supervisor: Supervisor | None, sessions: Sequence[Session]) -> list[SessionOut]:
    """The sessions as they are, not as their rows last said: one this worker runs as its runner knows it (the
    database may have refused to record it), and a row that speaks for a worker which no longer holds the session's
    lease (it died, or hangs) does not show the session as WORKING."""
    leases = await gateway.store.leases.held([s.id for s in sessions])
    now = gateway.clock()
    seen = []
    for session in sessions:
        runner = supervisor.runners.get(session.id) if supervisor is not None else None
        if runner is not None:
            status, reason, note = runner.observed()
            seen.append(SessionOut.of(replace(session, status=status, reason=reason, note=note)))
            continue
        lease = leases.get(session.id)
        held_since = lease.acquired_at if lease is not None and lease.live(now) else None
        seen.append(SessionOut.of(as_seen(session, held_since=held_since)))
    return seen


async def shown_one(gateway: Gateway, supervisor: Supervisor | None, session: Session) -> SessionOut:
    (seen,) = await shown(gateway, supervisor, [session])
    return seen


def _found(session: Session | None, name: str) -> Session:
    if session is None:  # deleted between the lookup and the change
        raise NotFound(f"no session named {name!r}", code="session_not_found")
    return session


@router.get("", summary="List the tenant's sessions")
async def list_sessions(
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    all: Annotated[bool, Query(description="include STOPPED sessions (as WAHA's ?all=true)")] = False,
) -> list[SessionOut]:
    sessions = await gateway.store.sessions.list_sessions(tenant_id)
    listed = [s for s in sessions if all or s.status is not Status.STOPPED or s.desired is Desired.RUNNING]
    return await shown(gateway, supervisor, listed)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a session",
    responses=error_answers(400, 404, 413, 422, 429),
)
async def create_session(
    body: SessionCreate, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> SessionOut:
    engine = body.engine or gateway.settings.default_engine
    if engine not in engine_names():
        raise Unprocessable(f"unknown engine {engine!r}; available: {', '.join(engine_names())}", code="unknown_engine")
    tenant = await gateway.store.tenants.get(tenant_id)
    if tenant is None:
        raise NotFound("the tenant no longer exists", code="tenant_not_found")
    new = NewSession(
        tenant_id=tenant_id,
        name=body.name,
        engine=engine,
        config=body.config.model_dump(exclude_none=True),
        desired=Desired.RUNNING if body.start else Desired.STOPPED,
    )
    try:
        session = await gateway.store.sessions.create(new, quotas=gateway.quotas_for(tenant), actor=ACTOR)
    except AlreadyExists:
        raise Unprocessable(f"a session named {body.name!r} already exists", code="session_exists") from None
    await _reconcile(supervisor, session)
    return SessionOut.of(session)


@router.get("/{name}", summary="Get a session", responses=error_answers(404))
async def get_session(
    name: SessionName, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> SessionOut:
    return await shown_one(gateway, supervisor, await find_session(gateway, tenant_id, name))


@router.put(
    "/{name}",
    summary="Replace a session's config (a running session restarts with it)",
    responses=error_answers(400, 404, 413, 422),
)
async def update_session(
    name: SessionName, body: SessionUpdate, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> SessionOut:
    await find_session(gateway, tenant_id, name)
    config = body.config.model_dump(exclude_none=True)
    updated = await gateway.store.sessions.update_config(tenant_id, name, config, actor=ACTOR)
    return await shown_one(gateway, supervisor, _found(updated, name))


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop and delete a session and its data",
    responses=error_answers(404),
)
async def delete_session(
    name: SessionName, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> Response:
    session = await find_session(gateway, tenant_id, name)
    if supervisor is not None:
        await supervisor.forget(session)
    if not await gateway.store.sessions.delete(tenant_id, name):
        raise NotFound(f"no session named {name!r}", code="session_not_found")
    gateway.vaults.forget(session.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _reconcile(supervisor: Supervisor | None, session: Session) -> None:
    if supervisor is not None:
        await supervisor.reconcile_one(session.tenant_id, session.id)


def require_supervisor(supervisor: Supervisor | None) -> Supervisor:
    if supervisor is None:
        raise ServiceUnavailable("this gateway process does not run sessions", code="no_supervisor")
    return supervisor


async def _set_desired(
    gateway: Gateway,
    supervisor: Supervisor | None,
    tenant_id: TenantId,
    name: str,
    desired: Desired,
    *,
    restart: bool = False,
) -> SessionOut:
    await find_session(gateway, tenant_id, name)
    changed = await gateway.store.sessions.set_desired(tenant_id, name, desired, actor=ACTOR, restart=restart)
    session = _found(changed, name)
    await _reconcile(supervisor, session)
    return await shown_one(gateway, supervisor, session)


@router.post("/{name}/start", summary="Ask for the session to run (also after it FAILED)", responses=error_answers(404))
async def start_session(
    name: SessionName, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> SessionOut:
    return await _set_desired(gateway, supervisor, tenant_id, name, Desired.RUNNING)


@router.post("/{name}/stop", summary="Ask for the session to stop (credentials are kept)", responses=error_answers(404))
async def stop_session(
    name: SessionName, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> SessionOut:
    return await _set_desired(gateway, supervisor, tenant_id, name, Desired.STOPPED)


@router.post(
    "/{name}/restart",
    summary="Restart the session; it runs afterwards, whatever it did before",
    responses=error_answers(404),
)
async def restart_session(
    name: SessionName, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> SessionOut:
    return await _set_desired(gateway, supervisor, tenant_id, name, Desired.RUNNING, restart=True)


@router.post(
    "/{name}/logout",
    summary="Unlink the phone and wipe the credentials; a running session shows a new QR",
    responses=error_answers(404, 409),
)
async def logout_session(
    name: SessionName, gateway: GatewayDep, supervisor: SupervisorDep, tenant_id: TenantDep
) -> SessionOut:
    session = await find_session(gateway, tenant_id, name)
    try:
        await require_supervisor(supervisor).logout(session)
    except EngineUnavailable as exc:
        raise Conflict(str(exc), code="not_here") from None
    return await shown_one(gateway, supervisor, await find_session(gateway, tenant_id, name))


@router.get("/{name}/me", summary="Who the session is logged in as (null until linked)", responses=error_answers(404))
async def session_me(name: SessionName, gateway: GatewayDep, tenant_id: TenantDep) -> dict[str, Any] | None:
    return (await find_session(gateway, tenant_id, name)).me


@router.get(
    "/{name}/history", summary="The session's recorded changes, newest first", responses=error_answers(404, 422)
)
async def session_history(
    name: SessionName,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=SQL_INT_MAX, description="entries older than this id")] = None,
) -> list[HistoryOut]:
    session = await find_session(gateway, tenant_id, name)
    entries = await gateway.store.sessions.history(tenant_id, session.id, limit=limit, before=before)
    return [HistoryOut.of(e) for e in entries]

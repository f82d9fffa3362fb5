"""``/api/sessions``: create, read, configure, start, stop and delete a tenant's sessions.

Start and stop record what the tenant wants (``desired``); the supervisor makes it so. Another tenant's session is
a 404, exactly like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from wagate.api.deps import GatewayDep, SupervisorDep, TenantDep
from wagate.api.schemas import SQL_INT_MAX, HistoryOut, SessionCreate, SessionOut, SessionUpdate, error_answers
from wagate.domain.sessions import Session
from wagate.errors import ServiceUnavailable
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.services.sessions import SessionService
from wagate.supervisor.supervisor import Supervisor

__all__ = [
    "ACTOR",
    "SessionName",
    "SessionsDep",
    "create_session",
    "delete_session",
    "find_session",
    "get_session",
    "get_sessions",
    "list_sessions",
    "logout_session",
    "require_supervisor",
    "restart_session",
    "router",
    "session_history",
    "session_me",
    "start_session",
    "stop_session",
    "update_session",
]

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=error_answers(401, 403, 503))

SessionName = Annotated[str, Path(description="the session's name", max_length=64)]
ACTOR = "api"


def get_sessions(gateway: GatewayDep, supervisor: SupervisorDep) -> SessionService:
    return SessionService(gateway, supervisor, actor=ACTOR)


SessionsDep = Annotated[SessionService, Depends(get_sessions)]


async def find_session(gateway: Gateway, tenant_id: TenantId, name: str) -> Session:
    """The tenant's session by name, or 404 (also for names that cannot exist)."""
    return await SessionService(gateway, None, actor=ACTOR).find(tenant_id, name)


def require_supervisor(supervisor: Supervisor | None) -> Supervisor:
    if supervisor is None:
        raise ServiceUnavailable("this gateway process does not run sessions", code="no_supervisor")
    return supervisor


@router.get("", summary="List the tenant's sessions")
async def list_sessions(
    sessions: SessionsDep,
    tenant_id: TenantDep,
    all: Annotated[bool, Query(description="include STOPPED sessions (as WAHA's ?all=true)")] = False,
) -> list[SessionOut]:
    return [SessionOut.of(s) for s in await sessions.list(tenant_id, include_stopped=all)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a session",
    responses=error_answers(400, 404, 413, 422, 429),
)
async def create_session(body: SessionCreate, sessions: SessionsDep, tenant_id: TenantDep) -> SessionOut:
    config = body.config.model_dump(exclude_none=True)
    made = await sessions.create(tenant_id, body.name, engine=body.engine, config=config, start=body.start)
    return SessionOut.of(made)


@router.get("/{name}", summary="Get a session", responses=error_answers(404))
async def get_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionOut:
    return SessionOut.of(await sessions.get(tenant_id, name))


@router.put(
    "/{name}",
    summary="Replace a session's config (a running session restarts with it)",
    responses=error_answers(400, 404, 413, 422),
)
async def update_session(
    name: SessionName, body: SessionUpdate, sessions: SessionsDep, tenant_id: TenantDep
) -> SessionOut:
    return SessionOut.of(await sessions.update_config(tenant_id, name, body.config.model_dump(exclude_none=True)))


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop and delete a session and its data",
    responses=error_answers(404),
)
async def delete_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> Response:
    await sessions.delete(tenant_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/start", summary="Ask for the session to run (also after it FAILED)", responses=error_answers(404))
async def start_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionOut:
    return SessionOut.of(await sessions.start(tenant_id, name))


@router.post("/{name}/stop", summary="Ask for the session to stop (credentials are kept)", responses=error_answers(404))
async def stop_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionOut:
    return SessionOut.of(await sessions.stop(tenant_id, name))


@router.post(
    "/{name}/restart",
    summary="Restart the session; it runs afterwards, whatever it did before",
    responses=error_answers(404),
)
async def restart_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionOut:
    return SessionOut.of(await sessions.restart(tenant_id, name))


@router.post(
    "/{name}/logout",
    summary="Unlink the phone and wipe the credentials; a running session shows a new QR",
    responses=error_answers(404, 409),
)
async def logout_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionOut:
    return SessionOut.of(await sessions.logout(tenant_id, name))


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

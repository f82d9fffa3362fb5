"""``/api/sessions``: create, read, configure, start, stop and delete a tenant's sessions, in WAHA's shapes.

Start and stop record what the tenant wants (``desired``); the supervisor makes it so. Another tenant's session is
a 404, exactly like a missing one. Answers are WAHA's ``SessionInfo`` (with wagate's additions); WAHA's deprecated
``POST /api/sessions/start|stop|logout`` are in :mod:`wagate.api.routes.sessions_legacy`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from wagate.api.deps import GatewayDep, PrincipalDep, SupervisorDep, TenantDep, get_node
from wagate.api.schemas import SQL_INT_MAX, error_answers
from wagate.api.session_schemas import (
    HistoryOut,
    MeInfo,
    SessionConfig,
    SessionCreate,
    SessionInfo,
    SessionTimestamps,
    SessionUpdate,
)
from wagate.domain.sessions import Session
from wagate.domain.waha import public_jid
from wagate.errors import NotFound, ServiceUnavailable
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.services.sessions import SessionService, SessionView
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
    "me_info",
    "require_supervisor",
    "restart_session",
    "router",
    "session_history",
    "session_info",
    "session_infos",
    "session_me",
    "start_session",
    "stop_session",
    "update_session",
]

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=error_answers(401, 403, 503))

SessionName = Annotated[str, Path(description="the session's name", max_length=64)]
_Expand = Annotated[
    list[Literal["apps"]] | None,
    Query(description="WAHA's details to add: apps (wagate has none: apps stays null)"),
]
ACTOR = "api"


async def get_sessions(request: Request, gateway: GatewayDep, supervisor: SupervisorDep) -> SessionService:
    return SessionService(gateway, supervisor, actor=ACTOR, endpoint_changed=get_node(request).endpoint_changed)


SessionsDep = Annotated[SessionService, Depends(get_sessions)]


async def find_session(gateway: Gateway, tenant_id: TenantId, name: str) -> Session:
    """The tenant's session by name, or 404 (also for names that cannot exist)."""
    return await SessionService(gateway, None, actor=ACTOR).find(tenant_id, name)


def require_supervisor(supervisor: Supervisor | None) -> Supervisor:
    if supervisor is None:
        raise ServiceUnavailable("this gateway process does not run sessions", code="no_supervisor")
    return supervisor


def me_info(me: dict[str, Any] | None) -> MeInfo | None:
    """The stored ``me`` (the device's JID, its phone number, its push name) as WAHA's ``MeInfo``."""
    if not me:
        return None
    jid = me.get("id")
    phone = str(me.get("phone") or "").lstrip("+")
    account = public_jid(jid) if jid else (f"{phone}@c.us" if phone else None)
    if account is None:
        return None
    return MeInfo(id=account, jid=jid, lid=me.get("lid"), reachoutTimelock=None, pushName=me.get("pushName") or "")


def _info(view: SessionView) -> SessionInfo:
    session = view.session
    return SessionInfo(
        name=session.name,
        status=session.status,
        config=SessionConfig.model_validate(view.config),
        me=me_info(session.me),
        assignedWorker=view.worker,
        presence={},
        apps=None,
        timestamps=SessionTimestamps(activity=None if view.activity is None else round(view.activity * 1000)),
        engine=session.engine,
        desired=session.desired.value,
        reason=session.reason.value if session.reason else None,
        note=session.note,
        created_at=session.created_at,
        updated_at=session.updated_at,
        connected_at=session.connected_at,
    )


async def session_infos(sessions: SessionService, seen: Sequence[Session]) -> list[SessionInfo]:
    """Sessions (as the service has seen them) as WAHA's ``SessionInfo``."""
    return [_info(view) for view in await sessions.describe(seen)]


async def session_info(sessions: SessionService, seen: Session) -> SessionInfo:
    (info,) = await session_infos(sessions, [seen])
    return info


@router.get("", summary="List the tenant's sessions", response_model_exclude_unset=True)
async def list_sessions(
    sessions: SessionsDep,
    tenant_id: TenantDep,
    principal: PrincipalDep,
    all: Annotated[bool, Query(description="include STOPPED sessions (as WAHA's ?all=true)")] = False,
    expand: _Expand = None,
) -> list[SessionInfo]:
    """A key scoped to one session lists that session only."""
    found = await sessions.list(tenant_id, include_stopped=all)
    return await session_infos(sessions, [s for s in found if principal.scope.reaches(s.name)])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_unset=True,
    summary="Create a session (and start it, unless start is false)",
    responses=error_answers(400, 404, 413, 422, 429),
)
async def create_session(body: SessionCreate, sessions: SessionsDep, tenant_id: TenantDep) -> SessionInfo:
    config = body.config.model_dump(exclude_none=True)
    made = await sessions.create(tenant_id, body.name, engine=body.engine, config=config, start=body.start)
    return await session_info(sessions, (await sessions.seen([made]))[0])


@router.get("/{name}", summary="Get a session", response_model_exclude_unset=True, responses=error_answers(404))
async def get_session(
    name: SessionName, sessions: SessionsDep, tenant_id: TenantDep, expand: _Expand = None
) -> SessionInfo:
    return await session_info(sessions, await sessions.get(tenant_id, name))


@router.put(
    "/{name}",
    response_model_exclude_unset=True,
    summary="Replace a session's config (a running session restarts with it)",
    responses=error_answers(400, 404, 413, 422, 429),
)
async def update_session(
    name: SessionName, body: SessionUpdate, sessions: SessionsDep, tenant_id: TenantDep
) -> SessionInfo:
    config = (body.config or SessionConfig()).model_dump(exclude_none=True)
    updated = await sessions.update(tenant_id, name, config, start=bool(body.start), stop=bool(body.stop))
    return await session_info(sessions, updated)


@router.delete(
    "/{name}",
    summary="Stop, log out and delete a session with its data and webhooks (also 200 when there is none)",
    response_class=Response,
    responses={200: {"description": "deleted, or there was no such session"}},
)
async def delete_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> Response:
    with contextlib.suppress(NotFound):  # as WAHA's: deleting is idempotent
        await sessions.delete(tenant_id, name)
    return Response(status_code=status.HTTP_200_OK)


@router.post(
    "/{name}/start",
    response_model_exclude_unset=True,
    status_code=status.HTTP_201_CREATED,
    summary="Ask for the session to run (also after it FAILED)",
    responses=error_answers(404),
)
async def start_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionInfo:
    return await session_info(sessions, await sessions.start(tenant_id, name))


@router.post(
    "/{name}/stop",
    response_model_exclude_unset=True,
    status_code=status.HTTP_201_CREATED,
    summary="Ask for the session to stop (credentials are kept)",
    responses=error_answers(404),
)
async def stop_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionInfo:
    return await session_info(sessions, await sessions.stop(tenant_id, name))


@router.post(
    "/{name}/restart",
    response_model_exclude_unset=True,
    status_code=status.HTTP_201_CREATED,
    summary="Restart the session; it runs afterwards, whatever it did before",
    responses=error_answers(404),
)
async def restart_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionInfo:
    return await session_info(sessions, await sessions.restart(tenant_id, name))


@router.post(
    "/{name}/logout",
    response_model_exclude_unset=True,
    status_code=status.HTTP_201_CREATED,
    summary="Unlink the phone and wipe the credentials; a running session shows a new QR",
    responses=error_answers(404, 409),
)
async def logout_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionInfo:
    return await session_info(sessions, await sessions.logout(tenant_id, name))


@router.get(
    "/{name}/me",
    response_model=MeInfo,
    summary="Who the session is logged in as",
    responses={204: {"description": "not linked yet: no content (WAHA answers an empty 200)"}, **error_answers(404)},
)
async def session_me(name: SessionName, gateway: GatewayDep, tenant_id: TenantDep) -> Any:
    me = me_info((await find_session(gateway, tenant_id, name)).me)
    return me if me is not None else Response(status_code=status.HTTP_204_NO_CONTENT)


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

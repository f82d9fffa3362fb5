"""WAHA's deprecated session routes, with the session's name in the body: ``POST /api/sessions/start`` (create or
reconfigure, then start), ``/stop`` (stop; with ``logout``, log out and delete) and ``/logout`` (log out and
delete), as WAHA still answers them.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Response, status

from wagate.api.deps import TenantDep
from wagate.api.routes.sessions import SessionsDep, session_info
from wagate.api.schemas import error_answers
from wagate.api.session_schemas import (
    SessionConfig,
    SessionInfo,
    SessionLogoutLegacy,
    SessionStartLegacy,
    SessionStopLegacy,
)
from wagate.domain.sessions import Desired
from wagate.errors import NotFound, Unprocessable
from wagate.ids import TenantId
from wagate.services.sessions import SessionService

__all__ = ["logout_legacy", "router", "start_legacy", "stop_legacy"]

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=error_answers(401, 403, 503))


@router.post(
    "/start",
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_unset=True,
    deprecated=True,
    summary="Create the session, or replace its config, and start it (WAHA's older form)",
    responses=error_answers(400, 413, 422, 429),
)
async def start_legacy(body: SessionStartLegacy, sessions: SessionsDep, tenant_id: TenantDep) -> SessionInfo:
    config = (body.config or SessionConfig()).model_dump(exclude_none=True)
    try:
        present = await sessions.find(tenant_id, body.name)
    except NotFound:
        made = await sessions.create(tenant_id, body.name, engine=None, config=config, start=True)
        return await session_info(sessions, (await sessions.seen([made]))[0])
    if present.desired is Desired.RUNNING:
        raise Unprocessable(f"session {body.name!r} is already started", code="session_started")
    return await session_info(sessions, await sessions.update(tenant_id, body.name, config, start=True))


@router.post(
    "/stop",
    status_code=status.HTTP_201_CREATED,
    deprecated=True,
    response_class=Response,
    summary="Stop the session; with logout, log out and delete it (WAHA's older form)",
    responses={201: {"description": "stopped (or deleted)"}, **error_answers(400, 404, 413, 422)},
)
async def stop_legacy(body: SessionStopLegacy, sessions: SessionsDep, tenant_id: TenantDep) -> Response:
    if body.logout:
        await _delete(sessions, tenant_id, body.name)
    else:
        await sessions.stop(tenant_id, body.name)
    return Response(status_code=status.HTTP_201_CREATED)


@router.post(
    "/logout",
    status_code=status.HTTP_201_CREATED,
    deprecated=True,
    response_class=Response,
    summary="Stop, log out and delete the session (WAHA's older form)",
    responses={201: {"description": "deleted, or there was no such session"}, **error_answers(400, 413, 422)},
)
async def logout_legacy(body: SessionLogoutLegacy, sessions: SessionsDep, tenant_id: TenantDep) -> Response:
    await _delete(sessions, tenant_id, body.name)
    return Response(status_code=status.HTTP_201_CREATED)


async def _delete(sessions: SessionService, tenant_id: TenantId, name: str) -> None:
    with contextlib.suppress(NotFound):  # as WAHA's: already gone
        await sessions.delete(tenant_id, name)

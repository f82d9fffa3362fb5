"""Repair by hand: ``POST /api/sessions/{name}/reset`` and a session's sealed backups.

A reset does what a quarantine does: a backup of the auth state is kept, the state is wiped, and a running session
shows a new QR code. A backup restores only into a stopped session, under its lease.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from wagate.api.deps import GatewayDep, TenantDep
from wagate.api.routes.sessions import SessionsDep, find_session, session_info
from wagate.api.schemas import error_answers
from wagate.api.session_schemas import SessionInfo
from wagate.domain.backups import Backup
from wagate.ids import BACKUP_ID_PATTERN, BackupId

__all__ = ["BackupOut", "Restored", "SessionName", "list_backups", "reset_session", "restore_backup", "router"]

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=error_answers(401, 403, 404, 503))
SessionName = Annotated[str, Path(description="the session's name", max_length=64)]


class BackupOut(BaseModel):
    id: str
    created_at: float
    reason: str
    records: int
    size: int

    @classmethod
    def of(cls, backup: Backup) -> BackupOut:
        return cls(
            id=backup.id, created_at=backup.created_at, reason=backup.reason, records=backup.records, size=backup.size
        )


class Restored(BaseModel):
    restored: int
    session: SessionInfo


@router.post(
    "/{name}/reset",
    summary="Back up and wipe a corrupted session; a running one shows a new QR code",
    responses=error_answers(409),
)
async def reset_session(name: SessionName, sessions: SessionsDep, tenant_id: TenantDep) -> SessionInfo:
    return await session_info(sessions, await sessions.reset(tenant_id, name))


@router.get("/{name}/backups", summary="The session's sealed backups, newest first")
async def list_backups(name: SessionName, gateway: GatewayDep, tenant_id: TenantDep) -> list[BackupOut]:
    session = await find_session(gateway, tenant_id, name)
    return [BackupOut.of(b) for b in await gateway.store.backups.list_backups(tenant_id, session.id)]


@router.post(
    "/{name}/backups/{backup_id}/restore",
    summary="Restore a backup into the stopped session",
    responses=error_answers(409, 422),
)
async def restore_backup(
    name: SessionName,
    backup_id: Annotated[str, Path(pattern=BACKUP_ID_PATTERN, description="the backup's id")],
    sessions: SessionsDep,
    tenant_id: TenantDep,
) -> Restored:
    count, session = await sessions.restore(tenant_id, name, BackupId(backup_id))
    return Restored(restored=count, session=await session_info(sessions, session))

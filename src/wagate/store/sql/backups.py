"""Sealed backups of sessions' auth state in SQL, the newest few per session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, update

from wagate.clock import Clock
from wagate.domain.backups import Backup
from wagate.ids import BackupId, SessionId, TenantId, new_backup_id
from wagate.store.contracts.backups import BackupStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database

__all__ = ["B", "SqlBackupStore"]

B = schema.backups
_META = (B.c.id, B.c.tenant_id, B.c.session_id, B.c.created_at, B.c.reason, B.c.records, B.c.size)


def _backup(row: Any) -> Backup:
    return Backup(
        id=BackupId(row.id),
        tenant_id=TenantId(row.tenant_id),
        session_id=SessionId(row.session_id),
        created_at=row.created_at,
        reason=row.reason,
        records=row.records,
        size=row.size,
    )


class SqlBackupStore(BackupStore):
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self, tenant_id: TenantId, session_id: SessionId, *, reason: str, records: int, payload: bytes, keep: int
    ) -> Backup:
        made = Backup(new_backup_id(), tenant_id, session_id, self._clock(), reason, records, len(payload))
        async with self._db.write() as conn:
            await conn.execute(
                insert(B).values(
                    id=made.id,
                    tenant_id=tenant_id,
                    session_id=session_id,
                    created_at=made.created_at,
                    reason=reason,
                    records=records,
                    size=made.size,
                    payload=payload,
                )
            )
            kept = (
                select(B.c.id)
                .where(B.c.tenant_id == tenant_id, B.c.session_id == session_id)
                .order_by(B.c.created_at.desc(), B.c.id.desc())
                .limit(max(keep, 1))
            )
            newest = [row.id for row in await conn.execute(kept)]
            await conn.execute(
                delete(B).where(B.c.tenant_id == tenant_id, B.c.session_id == session_id, B.c.id.not_in(newest))
            )
        return made

    async def list_backups(self, tenant_id: TenantId, session_id: SessionId) -> list[Backup]:
        query = (
            select(*_META)
            .where(B.c.tenant_id == tenant_id, B.c.session_id == session_id)
            .order_by(B.c.created_at.desc(), B.c.id.desc())
        )
        async with self._db.read() as conn:
            return [_backup(row) for row in await conn.execute(query)]

    async def payload(self, tenant_id: TenantId, session_id: SessionId, backup_id: BackupId) -> bytes | None:
        query = select(B.c.payload).where(B.c.tenant_id == tenant_id, B.c.session_id == session_id, B.c.id == backup_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return bytes(row.payload) if row is not None else None

    async def reseal_all_tenants(self, reseal: Callable[[bytes], bytes | None]) -> int:
        async with self._db.read() as conn:
            ids = [row.id for row in await conn.execute(select(B.c.id))]
        changed = 0
        for backup_id in ids:
            async with self._db.write() as conn:
                row = (await conn.execute(select(B.c.payload).where(B.c.id == backup_id))).first()
                if row is None:
                    continue
                fresh = reseal(bytes(row.payload))
                if fresh is not None:
                    await conn.execute(update(B).where(B.c.id == backup_id).values(payload=fresh, size=len(fresh)))
                    changed += 1
        return changed

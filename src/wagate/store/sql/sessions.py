"""Sessions and their history in SQL: what tenants change. Every change and its history entry commit in one
transaction; what the supervisor observes commits through ``commit.SessionCommit``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.clock import Clock
from wagate.domain.messages import Append
from wagate.domain.sessions import (
    Desired,
    HistoryEntry,
    HistoryKind,
    NewSession,
    Quotas,
    Reason,
    Session,
    Status,
    StatusChange,
)
from wagate.errors import AlreadyExists, LeaseLost, QuotaExceeded
from wagate.ids import SessionId, TenantId, new_session_id
from wagate.store.contracts.sessions import SessionStore
from wagate.store.sql import schema
from wagate.store.sql.commit import SessionCommit
from wagate.store.sql.db import Database
from wagate.store.sql.messages import forget_messages
from wagate.store.sql.prepared import Prepared, Tx, record_type
from wagate.store.sql.status import history_row, session_from, status_event, to_reconcile
from wagate.store.sql.writer import EventWriter

__all__ = ["H", "L", "S", "SqlSessionStore"]

S = schema.sessions
H = schema.session_history
L = schema.session_leases
# The reads of every API request that names a session or lists them, compiled once.
_BY_NAME = Prepared(
    lambda _: select(S).where(S.c.tenant_id == bindparam("tenant_id"), S.c.name == bindparam("name")),
    ["tenant_id", "name"],
)
_OF_TENANT = Prepared(
    lambda _: select(S).where(S.c.tenant_id == bindparam("tenant_id")).order_by(S.c.name), ["tenant_id"]
)
_SESSION_ROW = record_type(S)
_CREATE_LOCK = 0x77616762


def _entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        id=row.id,
        session_id=SessionId(row.session_id),
        at=row.at,
        kind=HistoryKind(row.kind),
        actor=row.actor,
        from_status=Status(row.from_status) if row.from_status else None,
        to_status=Status(row.to_status) if row.to_status else None,
        desired=Desired(row.desired) if row.desired else None,
        reason=Reason(row.reason) if row.reason else None,
        detail=json.loads(row.detail) if row.detail else {},
    )


class SqlSessionStore(SessionStore):
    def __init__(self, db: Database, clock: Clock, events: EventWriter, unit_of_work: SessionCommit) -> None:
        self._db = db
        self._clock = clock
        self._events = events
        self._unit_of_work = unit_of_work

    async def _record(
        self,
        conn: AsyncConnection,
        session: Session,
        kind: HistoryKind,
        actor: str,
        *,
        from_status: Status | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await conn.execute(insert(H).values(**history_row(session, kind, actor, from_status, detail)))

    async def create(self, new: NewSession, *, quotas: Quotas, actor: str) -> Session:
        now = self._clock()
        session = Session(
            id=new_session_id(),
            tenant_id=new.tenant_id,
            name=new.name,
            engine=new.engine,
            config=new.config,
            desired=new.desired,
            status=Status.STOPPED,
            reason=None,
            me=None,
            generation=0,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._db.write() as conn:
                if self._db.dialect == "postgresql":
                    # Serialise creations so that two racing requests cannot both pass the quota check.
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK})
                await self._check_quotas(conn, new.tenant_id, quotas)
                await conn.execute(
                    insert(S).values(
                        id=session.id,
                        tenant_id=session.tenant_id,
                        name=session.name,
                        engine=session.engine,
                        config=json.dumps(session.config),
                        desired=session.desired.value,
                        status=session.status.value,
                        generation=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await conn.execute(
                    insert(schema.session_leases).values(
                        session_id=session.id, owner=None, epoch=0, expires_at=0.0, acquired_at=now
                    )
                )
                await self._record(conn, session, HistoryKind.CREATED, actor)
        except IntegrityError:
            raise AlreadyExists(f"a session named {new.name!r} exists") from None
        return session

    async def _check_quotas(self, conn: AsyncConnection, tenant_id: TenantId, quotas: Quotas) -> None:
        count = select(func.count()).select_from(S)
        mine = (await conn.execute(count.where(S.c.tenant_id == tenant_id))).scalar_one()
        if mine >= quotas.per_tenant:
            raise QuotaExceeded(
                f"this tenant has reached its quota of {quotas.per_tenant} sessions; delete one or ask for more",
                code="tenant_quota_exceeded",
            )
        total = (await conn.execute(count)).scalar_one()
        if total >= quotas.total:
            raise QuotaExceeded(
                f"the gateway has reached its quota of {quotas.total} sessions", code="total_quota_exceeded"
            )

    async def get(self, tenant_id: TenantId, name: str) -> Session | None:
        rows = await self._db.run_read(lambda conn: Tx(conn).fetch(_BY_NAME, [tenant_id, name]))  # API requests'
        return session_from(_SESSION_ROW(rows[0])) if rows else None

    async def get_by_id(self, tenant_id: TenantId, session_id: SessionId) -> Session | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(S).where(S.c.tenant_id == tenant_id, S.c.id == session_id))).first()
        return session_from(row) if row else None

    async def existing_all_tenants(self, session_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = sorted(set(session_ids))
        async with self._db.read() as conn:
            for start in range(0, len(ids), 500):
                rows = await conn.execute(select(S.c.id).where(S.c.id.in_(ids[start : start + 500])))
                found.update(row.id for row in rows)
        return found

    async def list_sessions(self, tenant_id: TenantId) -> list[Session]:
        rows = await self._db.run_read(lambda conn: Tx(conn).fetch(_OF_TENANT, [tenant_id]))
        return [session_from(_SESSION_ROW(row)) for row in rows]

    async def count(self, tenant_id: TenantId | None) -> int:
        query = select(func.count()).select_from(S)
        if tenant_id is not None:
            query = query.where(S.c.tenant_id == tenant_id)
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def count_by_status_all_tenants(self) -> dict[tuple[str, str], int]:
        query = select(S.c.status, S.c.desired, func.count()).group_by(S.c.status, S.c.desired)
        async with self._db.read() as conn:
            return {(row[0], row[1]): int(row[2]) for row in await conn.execute(query)}

    async def _change(
        self,
        tenant_id: TenantId,
        name: str,
        values: Callable[[Session], dict[str, Any]],
        kind: HistoryKind,
        actor: str,
        detail: dict[str, Any] | None = None,
    ) -> Session | None:
        """Update one session and record the change, in one transaction."""
        async with self._db.write() as conn:
            row = (await conn.execute(select(S).where(S.c.tenant_id == tenant_id, S.c.name == name))).first()
            if row is None:
                return None
            before = session_from(row)
            await conn.execute(update(S).where(S.c.id == before.id).values(**values(before), updated_at=self._clock()))
            after = session_from((await conn.execute(select(S).where(S.c.id == before.id))).one())
            await self._record(conn, after, kind, actor, from_status=before.status, detail=detail)
            changed = (before.status, before.reason) != (after.status, after.reason)
            committed = await conn.run_sync(self._events.write, [status_event(before, after, actor)] if changed else [])
        self._events.notify(committed)
        return after

    async def set_desired(
        self, tenant_id: TenantId, name: str, desired: Desired, *, actor: str, restart: bool = False
    ) -> Session | None:
        def values(before: Session) -> dict[str, Any]:
            changed: dict[str, Any] = {"desired": desired.value}
            if restart:
                changed["generation"] = S.c.generation + 1
            if desired is Desired.RUNNING and before.status is Status.FAILED:
                # Asking a failed session to run again is the user's answer to the failure: clear it.
                changed.update(status=Status.STOPPED.value, reason=None, status_note=None)
            return changed

        detail = {"restart": True} if restart else None
        return await self._change(tenant_id, name, values, HistoryKind.DESIRED, actor, detail)

    async def update_config(
        self, tenant_id: TenantId, name: str, config: dict[str, Any], *, actor: str
    ) -> Session | None:
        values = {"config": json.dumps(config), "generation": S.c.generation + 1}
        return await self._change(tenant_id, name, lambda _: values, HistoryKind.CONFIG, actor)

    async def commit(
        self, changes: Sequence[StatusChange], appends: Sequence[Append]
    ) -> tuple[list[Session | None], list[LeaseLost | None]]:
        unit = self._unit_of_work
        outcome = await self._db.run_write(lambda conn: unit.write(conn, changes, appends))
        unit.notify(outcome)
        return outcome.applied, outcome.refused

    async def delete(self, tenant_id: TenantId, name: str) -> bool:
        async with self._db.write() as conn:
            row = (await conn.execute(select(S.c.id).where(S.c.tenant_id == tenant_id, S.c.name == name))).first()
            if row is None:
                return False
            # Explicit deletes, children first: the result does not depend on cascade support being enabled.
            for table in (
                schema.auth_records,
                schema.session_keys,
                schema.session_leases,
                schema.backups,
                H,
                schema.webhook_deliveries,
                schema.events,
            ):
                await conn.execute(delete(table).where(table.c.session_id == row.id))
            await forget_messages(conn, SessionId(row.id))
            await conn.execute(delete(S).where(S.c.id == row.id))
        return True

    async def history(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, before: int | None = None
    ) -> list[HistoryEntry]:
        query = select(H).where(H.c.tenant_id == tenant_id, H.c.session_id == session_id)
        if before is not None:
            query = query.where(H.c.id < before)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(H.c.id.desc()).limit(limit))).all()
        return [_entry(row) for row in rows]

    async def list_to_reconcile_all_tenants(self) -> list[Session]:
        query = select(S).where(or_(to_reconcile(Desired.RUNNING), to_reconcile(Desired.STOPPED)))
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(S.c.id))).all()
        return [session_from(row) for row in rows]

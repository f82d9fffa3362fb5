"""Sessions and their history in SQL. Every change and its history entry commit in one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.clock import Clock
from wagate.domain.events import Committed, Event, EventType
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
from wagate.store.sql.auth import SqlAuthRecordStore
from wagate.store.sql.db import Database
from wagate.store.sql.inbound import InboundWriter
from wagate.store.sql.messages import forget_messages
from wagate.store.sql.writer import EventWriter

S = schema.sessions
H = schema.session_history
L = schema.session_leases
_CREATE_LOCK = 0x77616762
# Column values to members by dict lookup: calling the enum costs about a microsecond each, and a mass restart reads
# ten thousand rows at a time.
_DESIRED = {d.value: d for d in Desired}
_STATUS = {s.value: s for s in Status}
_REASON = {r.value: r for r in Reason}


def _session(row: Any) -> Session:
    return Session(
        id=SessionId(row.id),
        tenant_id=TenantId(row.tenant_id),
        name=row.name,
        engine=row.engine,
        config=json.loads(row.config) if row.config != "{}" else {},
        desired=_DESIRED[row.desired],
        status=_STATUS[row.status],
        reason=_REASON[row.reason] if row.reason else None,
        me=json.loads(row.me) if row.me else None,
        generation=row.generation,
        created_at=row.created_at,
        updated_at=row.updated_at,
        note=row.status_note,
        connected_at=row.connected_at,
    )


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


def _history_row(
    session: Session, kind: HistoryKind, actor: str, from_status: Status | None, detail: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "tenant_id": session.tenant_id,
        "at": session.updated_at,
        "kind": kind.value,
        "actor": actor,
        "from_status": from_status.value if from_status else None,
        "to_status": session.status.value,
        "desired": session.desired.value,
        "reason": session.reason.value if session.reason else None,
        "detail": json.dumps(detail) if detail else None,
    }


def to_reconcile(desired: Desired) -> ColumnElement[bool]:
    """Sessions that want ``desired`` and do not have it yet: to run (and not FAILED), or to stop (and neither
    STOPPED nor FAILED)."""
    if desired is Desired.RUNNING:
        return and_(S.c.desired == desired.value, S.c.status != Status.FAILED.value)
    return and_(S.c.desired == desired.value, S.c.status.not_in((Status.STOPPED.value, Status.FAILED.value)))


def status_event(before: Session, after: Session, actor: str) -> Event:
    """The ``session.status`` event of a change from ``before`` to ``after``."""
    return Event.new(
        EventType.SESSION_STATUS,
        after.tenant_id,
        after.id,
        after.name,
        after.updated_at,
        {
            "status": after.status.value,
            "previous": before.status.value,
            "reason": after.reason.value if after.reason else None,
            "note": after.note,
            "me": after.me,
            "actor": actor,
        },
    )


class SqlSessionStore(SessionStore):
    def __init__(
        self, db: Database, clock: Clock, events: EventWriter, inbound: InboundWriter, auth: SqlAuthRecordStore
    ) -> None:
        self._db = db
        self._clock = clock
        self._events = events
        self._inbound = inbound
        self._auth = auth

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
        await conn.execute(insert(H).values(**_history_row(session, kind, actor, from_status, detail)))

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
        async with self._db.read() as conn:
            row = (await conn.execute(select(S).where(S.c.tenant_id == tenant_id, S.c.name == name))).first()
        return _session(row) if row else None

    async def get_by_id(self, tenant_id: TenantId, session_id: SessionId) -> Session | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(S).where(S.c.tenant_id == tenant_id, S.c.id == session_id))).first()
        return _session(row) if row else None

    async def existing_all_tenants(self, session_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = sorted(set(session_ids))
        async with self._db.read() as conn:
            for start in range(0, len(ids), 500):
                rows = await conn.execute(select(S.c.id).where(S.c.id.in_(ids[start : start + 500])))
                found.update(row.id for row in rows)
        return found

    async def list_sessions(self, tenant_id: TenantId) -> list[Session]:
        async with self._db.read() as conn:
            rows = (await conn.execute(select(S).where(S.c.tenant_id == tenant_id).order_by(S.c.name))).all()
        return [_session(row) for row in rows]

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
            before = _session(row)
            await conn.execute(update(S).where(S.c.id == before.id).values(**values(before), updated_at=self._clock()))
            after = _session((await conn.execute(select(S).where(S.c.id == before.id))).one())
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
        applied, refused, committed = await self._db.run_write(lambda conn: self._commit(conn, changes, appends))
        self._events.notify(committed)
        return applied, refused

    def _commit(
        self, conn: Connection, changes: Sequence[StatusChange], appends: Sequence[Append]
    ) -> tuple[list[Session | None], list[LeaseLost | None], Committed]:
        writes = [a.auth for a in appends if a.auth is not None]
        outcomes = iter(self._auth.apply_many(conn, writes))
        refused = [next(outcomes) if a.auth is not None else None for a in appends]
        kept = [a for a, no in zip(appends, refused, strict=True) if no is None]
        applied, events = self._apply_changes(conn, changes)
        events.extend(e for a in kept for e in a.events)
        inbound = [m for a in kept for m in a.inbound]
        if inbound:
            events.extend(m.event for m in self._inbound.write(conn, inbound))
        return applied, refused, self._events.write(conn, events)

    def _apply_changes(
        self, conn: Connection, changes: Sequence[StatusChange]
    ) -> tuple[list[Session | None], list[Event]]:
        """Fenced status changes with their history rows; what applied, and the events to publish with them."""
        results: list[Session | None] = [None] * len(changes)
        to_publish: list[Event] = []
        now = self._clock()
        ids = sorted({c.session_id for c in changes})
        holders: dict[str, tuple[str, int]] = {}
        current: dict[str, Session] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            lease_rows = conn.execute(select(L).where(L.c.session_id.in_(chunk)))
            holders.update({row.session_id: (row.owner, row.epoch) for row in lease_rows})
            current.update({row.id: _session(row) for row in conn.execute(select(S).where(S.c.id.in_(chunk)))})
        updates: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for index, change in enumerate(changes):
            before = current.get(change.session_id)
            if before is None or before.tenant_id != change.tenant_id:
                continue
            if holders.get(change.session_id) != (change.owner, change.epoch):
                continue
            me = None if change.clear_me else (change.me if change.me is not None else before.me)
            connected = change.status is Status.WORKING and before.status is not Status.WORKING
            after = Session(  # built directly: dataclasses.replace costs several times more, once per change
                id=before.id,
                tenant_id=before.tenant_id,
                name=before.name,
                engine=before.engine,
                config=before.config,
                desired=before.desired,
                status=change.status,
                reason=change.reason,
                me=me,
                generation=before.generation,
                created_at=before.created_at,
                updated_at=now,
                note=change.note,
                connected_at=now if connected else before.connected_at,
            )
            current[change.session_id] = after
            results[index] = after
            updates.append(
                {
                    "b_id": after.id,
                    "b_status": after.status.value,
                    "b_reason": after.reason.value if after.reason else None,
                    "b_me": json.dumps(me) if me is not None else None,
                    "b_note": change.note,
                    "b_at": now,
                    "b_connected": after.connected_at,
                }
            )
            history.append(_history_row(after, HistoryKind.STATUS, change.actor, before.status, change.detail))
            if (before.status, before.reason, before.note) != (after.status, after.reason, after.note):
                to_publish.append(status_event(before, after, change.actor))
            to_publish.extend(change.events)
        if updates:
            conn.execute(
                update(S)
                .where(S.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    reason=bindparam("b_reason"),
                    me=bindparam("b_me"),
                    status_note=bindparam("b_note"),
                    updated_at=bindparam("b_at"),
                    connected_at=bindparam("b_connected"),
                ),
                updates,
            )
            conn.execute(insert(H), history)
        return results, to_publish

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
        return [_session(row) for row in rows]

"""Session rows in SQL, and the fenced status changes the supervisor records (with their history and events).

Shared by ``sessions`` (what tenants change) and ``commit`` (what the supervisor observes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, insert, select, update

from wagate.domain import payloads
from wagate.domain.events import Event, EventType
from wagate.domain.sessions import Desired, HistoryKind, Reason, Session, Status, StatusChange
from wagate.ids import SessionId, TenantId
from wagate.store.sql import schema

__all__ = ["H", "L", "S", "apply_changes", "history_row", "session_from", "status_event", "to_reconcile"]

S = schema.sessions
H = schema.session_history
L = schema.session_leases
# Column values to members by dict lookup: calling the enum costs about a microsecond each, and a mass restart reads
# ten thousand rows at a time.
_DESIRED = {d.value: d for d in Desired}
_STATUS = {s.value: s for s in Status}
_REASON = {r.value: r for r in Reason}


def session_from(row: Any) -> Session:
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


def history_row(
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


def status_event(before: Session, after: Session, actor: str) -> Event:
    """The ``session.status`` event of a change from ``before`` to ``after``."""
    return Event.new(
        EventType.SESSION_STATUS,
        after.tenant_id,
        after.id,
        after.name,
        after.updated_at,
        payloads.session_status(
            name=after.name,
            status=after.status.value,
            previous=before.status.value,
            since=before.updated_at,
            at=after.updated_at,
            reason=after.reason.value if after.reason else None,
            note=after.note,
            me=after.me,
            actor=actor,
        ),
    )


def to_reconcile(desired: Desired) -> ColumnElement[bool]:
    """Sessions that want ``desired`` and do not have it yet: to run (and not FAILED), or to stop (and neither
    STOPPED nor FAILED)."""
    if desired is Desired.RUNNING:
        return and_(S.c.desired == desired.value, S.c.status != Status.FAILED.value)
    return and_(S.c.desired == desired.value, S.c.status.not_in((Status.STOPPED.value, Status.FAILED.value)))


def apply_changes(
    conn: Connection, changes: Sequence[StatusChange], now: float
) -> tuple[list[Session | None], list[Event]]:
    """Fenced status changes with their history rows; what applied, and the events to publish with them."""
    results: list[Session | None] = [None] * len(changes)
    to_publish: list[Event] = []
    ids = sorted({c.session_id for c in changes})
    holders: dict[str, tuple[str, int]] = {}
    current: dict[str, Session] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        lease_rows = conn.execute(select(L).where(L.c.session_id.in_(chunk)))
        holders.update({row.session_id: (row.owner, row.epoch) for row in lease_rows})
        current.update({row.id: session_from(row) for row in conn.execute(select(S).where(S.c.id.in_(chunk)))})
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
        history.append(history_row(after, HistoryKind.STATUS, change.actor, before.status, change.detail))
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

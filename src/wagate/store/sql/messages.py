"""Messages in SQL: the outbound queue, each message's status as it moves on, and reading them back.

Outbound messages are queued with their media and their chat's counters, those of concurrent requests in one
transaction (:mod:`~wagate.store.sql.enqueue`); each status they reach commits with its event. Received messages are
written by ``inbound`` inside a session's commit; chats, contacts and groups are read and kept by ``directory``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.clock import Clock
from wagate.domain import payloads
from wagate.domain.events import Committed, Event, EventType
from wagate.domain.messages import (
    QUEUED,
    Message,
    MessageKind,
    MessageStatus,
    NewOutbound,
    StatusUpdate,
    moves,
    reported,
)
from wagate.errors import AlreadyExists, IdempotencyConflict, LeaseLost
from wagate.ids import SessionId, TenantId
from wagate.store.contracts.messages import MessageStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.enqueue import IS_QUEUED, EnqueueCombiner, Queued
from wagate.store.sql.prepared import InList, Prepared, Tx, rows_in
from wagate.store.sql.writer import EventWriter

__all__ = ["MM", "C", "G", "K", "L", "M", "SqlMessageStore", "forget_messages"]

M = schema.messages
MM = schema.message_media
C = schema.chats
K = schema.contacts
G = schema.chat_groups
L = schema.session_leases
_QUEUED = [s.value for s in QUEUED]
assert set(_QUEUED) == {"pending", "sending"}, "keep IS_QUEUED and the index in step with domain.messages.QUEUED"
# The sender's statements (its queue, a batch's ``sending``, then its ``sent`` and the receipts), compiled once.
_M_ROW = namedtuple("_M_ROW", [c.name for c in M.c])  # type: ignore[misc]  # a row as tuple, read by name
_CURRENT = InList(
    lambda _, items: select(M).where(rows_in([M.c.session_id, M.c.id], items), M.c.from_me == 1),
    width=2,
)
_SET_STATUS = (
    update(M)
    .where(M.c.session_id == bindparam("b_session"), M.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        error=bindparam("b_error"),
        timestamp=bindparam("b_ts"),
        updated_at=bindparam("b_at"),
    )
)
_WAITING = Prepared(
    lambda _: (
        select(M)
        .where(M.c.session_id == bindparam("session_id"), M.c.tenant_id == bindparam("tenant_id"), IS_QUEUED)
        .order_by(M.c.seq)
        .limit(bindparam("limit"))
    ),
    ("session_id", "tenant_id", "limit"),
)
_DROP_MEDIA = InList(lambda _, items: delete(MM).where(rows_in([MM.c.session_id, MM.c.message_id], items)), width=2)
_LEASE_HOLDER = Prepared(
    lambda _: select(L.c.owner, L.c.epoch).where(L.c.session_id == bindparam("session_id")).with_for_update(),
    ("session_id",),
)
_TO_SENDING = InList(
    lambda _, items: (
        update(M)
        .where(
            M.c.session_id == bindparam("session_id"),
            M.c.tenant_id == bindparam("tenant_id"),
            M.c.id.in_([item[0] for item in items]),
            M.c.status == MessageStatus.PENDING.value,
        )
        .values(status=MessageStatus.SENDING.value, attempts=M.c.attempts + 1, updated_at=bindparam("now"))
        .returning(M.c.id)
    ),
    width=1,
    extra=("session_id", "tenant_id", "now"),
)


def _message(row: Any) -> Message:
    return Message(
        seq=row.seq,
        tenant_id=TenantId(row.tenant_id),
        session_id=SessionId(row.session_id),
        id=row.id,
        chat_id=row.chat_id,
        sender=row.sender,
        from_me=bool(row.from_me),
        kind=MessageKind(row.kind),
        status=MessageStatus(row.status),
        timestamp=row.timestamp,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempts=row.attempts,
        error=row.error,
        body=row.body,
    )


def _queued(new: NewOutbound, queued: Queued) -> Message:
    return Message(
        seq=queued.seq,
        tenant_id=new.tenant_id,
        session_id=new.session_id,
        id=new.id,
        chat_id=new.chat_id,
        sender=new.sender,
        from_me=True,
        kind=new.kind,
        status=MessageStatus.PENDING,
        timestamp=queued.at,
        created_at=queued.at,
        updated_at=queued.at,
        attempts=0,
        error=None,
        body=new.body,
    )


class SqlMessageStore(MessageStore):
    def __init__(self, db: Database, clock: Clock, events: EventWriter) -> None:
        self._db = db
        self._clock = clock
        self._events = events
        self._enqueues = EnqueueCombiner(db, clock)  # group commit of the requests that queue messages

    # outbound --------------------------------------------------------------------------------------------------

    async def enqueue(self, new: NewOutbound, *, max_queued: int) -> tuple[Message, bool]:
        while True:
            outcome = await self._enqueues.submit(new, max_queued)
            if isinstance(outcome, Queued):
                return _queued(new, outcome), True
            if outcome is not None:  # the idempotency key's message
                return self._replayed(new, outcome), False
            # Its row conflicted with one committed meanwhile: a concurrent request with the same idempotency key
            # won the race, or the session has a message of this id (or had: then it goes again).
            async with self._db.read() as conn:
                replay = await self._replay(conn, new)
            if replay is not None:
                return replay, False
            if await self.get(new.tenant_id, new.session_id, new.id) is not None:
                raise AlreadyExists(f"the session has a message {new.id!r} already")

    async def _replay(self, conn: AsyncConnection, new: NewOutbound) -> Message | None:
        if new.idem_key is None:
            return None
        row = (
            await conn.execute(select(M).where(M.c.tenant_id == new.tenant_id, M.c.idem_key == new.idem_key))
        ).first()
        return None if row is None else self._replayed(new, row)

    @staticmethod
    def _replayed(new: NewOutbound, row: Any) -> Message:
        if row.idem_hash != new.idem_hash or row.session_id != new.session_id:
            raise IdempotencyConflict("this Idempotency-Key was used for a different request")
        return _message(row)

    async def queued(self, tenant_id: TenantId, session_id: SessionId, limit: int) -> list[Message]:
        rows = await self._db.run_read(lambda conn: Tx(conn).fetch(_WAITING, (session_id, tenant_id, limit)))
        return [_message(_M_ROW(*row)) for row in rows]  # a sender's, before each batch

    async def media(self, tenant_id: TenantId, session_id: SessionId, message_id: str) -> bytes | None:
        query = select(MM.c.data).where(
            MM.c.session_id == session_id, MM.c.message_id == message_id, MM.c.tenant_id == tenant_id
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return bytes(row.data) if row else None

    async def mark_sending(
        self, tenant_id: TenantId, session_id: SessionId, ids: Sequence[str], *, owner: str, epoch: int
    ) -> list[str]:
        if not ids:
            return []
        now = self._clock()

        def work(conn: Connection) -> list[str]:
            tx = Tx(conn)
            # The lease row, locked on PostgreSQL until the commit: a worker taking the session over waits for it.
            holder = tx.fetch(_LEASE_HOLDER, (session_id,))
            if not holder or holder[0] != (owner, epoch):
                raise LeaseLost(f"session {session_id}: its lease has moved on; nothing is sent from here")
            moved = _TO_SENDING.fetch(tx, [(i,) for i in dict.fromkeys(ids)], (session_id, tenant_id, now))
            return [row[0] for row in moved]

        # On SQLite's writer thread, whole: a sender stopped in the middle cannot cut the transaction off.
        return await self._db.run_write(work)

    async def update_status(self, updates: Sequence[StatusUpdate], *, events: Sequence[Event] = ()) -> list[Message]:
        if not updates and not events:
            return []

        def work(conn: Connection) -> tuple[list[Message], Committed]:
            changed, acks = self._apply(conn, updates)
            return changed, self._events.write(conn, [*events, *acks])

        changed, committed = await self._db.run_write(work)
        self._events.notify(committed)
        return changed

    def _apply(self, conn: Connection, updates: Sequence[StatusUpdate]) -> tuple[list[Message], list[Event]]:
        tx = Tx(conn)
        keys = sorted({(u.session_id, u.message_id) for u in updates})
        current: dict[tuple[str, str], Message] = {}
        for values in _CURRENT.fetch(tx, keys):
            row: Any = _M_ROW(*values)
            current[(row.session_id, row.id)] = _message(row)
        now = self._clock()
        changed: dict[tuple[str, str], Message] = {}
        events: list[Event] = []
        for u in updates:
            before = current.get((u.session_id, u.message_id))
            if before is None or before.tenant_id != u.tenant_id or not moves(before.status, u.status):
                continue
            after = replace(
                before,
                status=u.status,
                error=u.error if u.status is MessageStatus.FAILED else before.error,
                timestamp=u.timestamp if u.timestamp is not None else before.timestamp,
                updated_at=now,
            )
            current[(u.session_id, u.message_id)] = changed[(u.session_id, u.message_id)] = after
            if reported(u.status):
                events.append(_ack_event(u, before, after, now))
        if not changed:
            return [], []
        conn.execute(
            _SET_STATUS,
            [
                {
                    "b_session": m.session_id,
                    "b_id": m.id,
                    "b_status": m.status.value,
                    "b_error": m.error,
                    "b_ts": m.timestamp,
                    "b_at": now,
                }
                for m in changed.values()
            ],
        )
        gone = [(m.session_id, m.id) for m in changed.values() if m.status not in QUEUED]
        if gone:
            _DROP_MEDIA.run(tx, gone)
        return list(changed.values()), events

    async def fail_queued(self, tenant_id: TenantId, session_id: SessionId, session_name: str, error: str) -> int:
        def work(conn: Connection) -> tuple[list[Message], Committed]:
            ids = conn.execute(
                select(M.c.id)
                .where(M.c.session_id == session_id, M.c.tenant_id == tenant_id, IS_QUEUED)
                .order_by(M.c.seq)
            ).scalars()
            updates = [
                StatusUpdate(tenant_id, session_id, session_name, i, MessageStatus.FAILED, error=error) for i in ids
            ]
            changed, events = self._apply(conn, updates) if updates else ([], [])
            return changed, self._events.write(conn, events)

        changed, committed = await self._db.run_write(work)
        self._events.notify(committed)
        return len(changed)

    # reading ---------------------------------------------------------------------------------------------------

    async def get(self, tenant_id: TenantId, session_id: SessionId, message_id: str) -> Message | None:
        query = select(M).where(M.c.session_id == session_id, M.c.tenant_id == tenant_id, M.c.id == message_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return _message(row) if row else None

    async def get_many(self, tenant_id: TenantId, session_id: SessionId, ids: Collection[str]) -> dict[str, Message]:
        if not ids:
            return {}
        query = select(M).where(M.c.session_id == session_id, M.c.tenant_id == tenant_id, M.c.id.in_(list(ids)))
        async with self._db.read() as conn:
            return {row.id: _message(row) for row in await conn.execute(query)}

    async def list_messages(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        chat_id: str | None,
        sender: str | None = None,
        since: float | None = None,
        until: float | None = None,
        from_me: bool | None = None,
        statuses: Collection[MessageStatus] | None = None,
        cursor: tuple[float, int] | None = None,
        offset: int = 0,
        newest_first: bool = True,
        limit: int = 100,
    ) -> list[Message]:
        query = select(M).where(M.c.session_id == session_id, M.c.tenant_id == tenant_id)
        if chat_id is not None:
            query = query.where(M.c.chat_id == chat_id)
        if sender is not None:
            query = query.where(M.c.sender == sender)
        if since is not None:
            query = query.where(M.c.timestamp >= since)
        if until is not None:
            query = query.where(M.c.timestamp <= until)
        if from_me is not None:
            query = query.where(M.c.from_me == int(from_me))
        if statuses is not None:
            query = query.where(M.c.status.in_([s.value for s in statuses]))
        key = tuple_(M.c.timestamp, M.c.seq)
        if cursor is not None:
            query = query.where(key < tuple_(*cursor) if newest_first else key > tuple_(*cursor))
        order = (M.c.timestamp.desc(), M.c.seq.desc()) if newest_first else (M.c.timestamp, M.c.seq)
        query = query.order_by(*order).offset(offset).limit(limit)
        async with self._db.read() as conn:
            return [_message(row) for row in await conn.execute(query)]

    async def prune_all_tenants(self, now: float, chunk: int = 5000) -> int:
        """Delete each tenant's messages older than its retention (queued ones stay), ``chunk`` per transaction."""
        tenants = schema.tenants
        removed = 0
        query = select(tenants.c.id, tenants.c.message_retention_days).where(
            tenants.c.message_retention_days.is_not(None)
        )
        async with self._db.read() as conn:
            kept = (await conn.execute(query)).all()
        for tenant_id, days in kept:
            cutoff = now - float(days) * 86400
            old = (
                select(M.c.seq)
                .where(M.c.tenant_id == tenant_id, M.c.created_at < cutoff, M.c.status.not_in(_QUEUED))
                .limit(chunk)
            )
            removed += await self._db.delete_in_chunks(delete(M).where(M.c.seq.in_(old.scalar_subquery())), chunk)
            async with self._db.write() as conn:
                await conn.execute(delete(C).where(C.c.tenant_id == tenant_id, C.c.last_message_at < cutoff))
        return removed

    async def queued_sessions_all_tenants(self) -> set[SessionId]:
        query = select(M.c.session_id).where(IS_QUEUED).distinct()
        async with self._db.read() as conn:
            return {SessionId(row.session_id) for row in await conn.execute(query)}


def _ack_event(update: StatusUpdate, before: Message, after: Message, now: float) -> Event:
    payload = payloads.message_ack(
        message_id=after.id,
        chat=after.chat_id,
        sender=after.sender,
        status=after.status,
        previous=before.status if reported(before.status) else None,
        timestamp=after.timestamp,
        error=after.error,
    )
    return Event.new(EventType.MESSAGE_ACK, update.tenant_id, update.session_id, update.session_name, now, payload)


async def forget_messages(conn: AsyncConnection, session_id: SessionId) -> None:
    """Inside a session's deletion: its messages, their media, and its directory."""
    for table in (M, MM, schema.chats, schema.contacts, schema.chat_groups):
        await conn.execute(delete(table).where(table.c.session_id == session_id))

"""Messages, chats, contacts and groups in SQL.

Inbound messages are written inside the status recorder's transaction (``write_inbound``), so a message, its chat's
counters and its ``message.received`` event commit together, and only for a message id not stored before. Outbound
messages are queued in one transaction with their media; each status they reach commits with its event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, insert, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.clock import Clock
from wagate.domain.events import Committed, Event, EventType
from wagate.domain.messages import (
    QUEUED,
    Chat,
    Contact,
    Group,
    InboundMessage,
    Message,
    MessageKind,
    MessageStatus,
    NewOutbound,
    StatusUpdate,
    is_group,
    moves,
    reported,
)
from wagate.errors import IdempotencyConflict, LeaseLost, QueueFull
from wagate.ids import SessionId, TenantId
from wagate.store.contracts.messages import MessageStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.events import EventWriter
from wagate.store.sql.prepared import InsertMany, Tx

M = schema.messages
MM = schema.message_media
C = schema.chats
K = schema.contacts
G = schema.chat_groups
L = schema.session_leases
_QUEUED = [s.value for s in QUEUED]
# Spelled out, not bound: a partial index (ix_messages_queue) serves a query only when its condition is literally there.
_IS_QUEUED = text("messages.status IN ('pending', 'sending')")
assert set(_QUEUED) == {"pending", "sending"}, "keep _IS_QUEUED and the index in step with domain.messages.QUEUED"
_CHUNK = 500


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


def _count_into_chat(insert: Any) -> Any:
    """Count messages into their chat: more messages, and the newer of the two last messages."""
    newer = insert.excluded.last_message_at >= C.c.last_message_at
    return insert.on_conflict_do_update(
        index_elements=["session_id", "id"],
        set_={
            "messages": C.c.messages + insert.excluded.messages,
            "last_message_at": case((newer, insert.excluded.last_message_at), else_=C.c.last_message_at),
            "last_message_id": case((newer, insert.excluded.last_message_id), else_=C.c.last_message_id),
        },
    )


def _take_push_name(insert: Any) -> Any:
    return insert.on_conflict_do_update(
        index_elements=["session_id", "id"],
        set_={"push_name": insert.excluded.push_name, "updated_at": insert.excluded.updated_at},
    )


_CHAT_COUNT = InsertMany(
    C, ("session_id", "id", "tenant_id", "last_message_id", "last_message_at", "messages"), conflict=_count_into_chat
)
_PUSH_NAME = InsertMany(
    K, ("session_id", "id", "tenant_id", "name", "push_name", "updated_at"), conflict=_take_push_name
)
_INSERT_RECEIVED = InsertMany(
    M,
    (
        "tenant_id",
        "session_id",
        "id",
        "chat_id",
        "sender",
        "from_me",
        "kind",
        "status",
        "timestamp",
        "created_at",
        "updated_at",
        "attempts",
        "body",
    ),
    conflict=lambda insert: insert.on_conflict_do_nothing(index_elements=["session_id", "id"]),
    returning=("session_id", "id"),
)


class SqlMessageStore(MessageStore):
    def __init__(self, db: Database, clock: Clock, events: EventWriter) -> None:
        self._db = db
        self._clock = clock
        self._events = events
        self._contact_upsert = db.upsert(K, ["session_id", "id"], ["name", "push_name", "updated_at"])
        self._group_upsert = db.upsert(G, ["session_id", "id"], ["subject", "participants", "updated_at"])

    # inbound ---------------------------------------------------------------------------------------------------

    def write_inbound(self, conn: Connection, items: Sequence[InboundMessage]) -> list[InboundMessage]:
        """Store the messages not stored before, inside the caller's transaction; the new ones."""
        unique: dict[tuple[str, str], InboundMessage] = {}
        for item in items:
            unique.setdefault((item.session_id, item.id), item)
        if not unique:
            return []
        now = self._clock()
        tx = Tx(conn)
        # One statement: the rows it did insert come back (a message stored before, redelivered after a lost ack,
        # conflicts and does not), matched by key since a multi-row insert does not promise their order.
        received = MessageStatus.RECEIVED.value
        inserted = _INSERT_RECEIVED.returned(
            tx,
            [
                (
                    m.tenant_id,
                    m.session_id,
                    m.id,
                    m.chat_id,
                    m.sender,
                    0,
                    m.kind.value,
                    received,
                    m.timestamp,
                    now,
                    now,
                    0,
                    m.body,
                )
                for m in unique.values()
            ],
        )
        new_keys = set(inserted)
        fresh = [m for key, m in unique.items() if key in new_keys]
        if not fresh:
            return []
        self._count_into_chats(tx, [(m.tenant_id, m.session_id, m.chat_id, m.id, m.timestamp) for m in fresh])
        names = {(m.session_id, m.sender): m for m in fresh if m.push_name}
        _PUSH_NAME.run(tx, [(m.session_id, m.sender, m.tenant_id, None, m.push_name, now) for m in names.values()])
        return fresh

    def _touch_chats(self, conn: Connection, items: Sequence[tuple[str, str, str, str, float]]) -> None:
        self._count_into_chats(Tx(conn), items)

    @staticmethod
    def _count_into_chats(tx: Tx, items: Sequence[tuple[str, str, str, str, float]]) -> None:
        """Count messages into their chats: (tenant, session, chat, message id, timestamp) each."""
        chats: dict[tuple[str, str], list[Any]] = {}
        for tenant_id, session_id, chat_id, message_id, timestamp in items:
            row = chats.get((session_id, chat_id))
            if row is None:
                chats[(session_id, chat_id)] = [session_id, chat_id, tenant_id, message_id, timestamp, 1]
                continue
            row[5] += 1
            if timestamp >= row[4]:
                row[4], row[3] = timestamp, message_id
        _CHAT_COUNT.run(tx, [tuple(row) for row in chats.values()])

    # outbound --------------------------------------------------------------------------------------------------

    async def enqueue(self, new: NewOutbound, *, max_queued: int) -> tuple[Message, bool]:
        try:
            return await self._enqueue(new, max_queued)
        except IntegrityError:  # a concurrent request with the same idempotency key won the race
            async with self._db.read() as conn:
                replay = await self._replay(conn, new)
            if replay is None:
                raise
            return replay, False

    async def _replay(self, conn: AsyncConnection, new: NewOutbound) -> Message | None:
        if new.idem_key is None:
            return None
        row = (
            await conn.execute(select(M).where(M.c.tenant_id == new.tenant_id, M.c.idem_key == new.idem_key))
        ).first()
        if row is None:
            return None
        if row.idem_hash != new.idem_hash or row.session_id != new.session_id:
            raise IdempotencyConflict("this Idempotency-Key was used for a different request")
        return _message(row)

    async def _enqueue(self, new: NewOutbound, max_queued: int) -> tuple[Message, bool]:
        now = self._clock()
        async with self._db.write() as conn:
            replay = await self._replay(conn, new)
            if replay is not None:
                return replay, False
            if self._db.dialect == "postgresql":  # one enqueue per session at a time: the queue bound holds
                await conn.execute(
                    select(schema.sessions.c.id).where(schema.sessions.c.id == new.session_id).with_for_update()
                )
            waiting = (
                await conn.execute(select(func.count()).where(M.c.session_id == new.session_id, _IS_QUEUED))
            ).scalar_one()
            if waiting >= max_queued:
                raise QueueFull(f"the session's outbound queue is full ({waiting} messages wait); retry later")
            values = {
                "tenant_id": new.tenant_id,
                "session_id": new.session_id,
                "id": new.id,
                "chat_id": new.chat_id,
                "sender": new.sender,
                "from_me": 1,
                "kind": new.kind.value,
                "status": MessageStatus.PENDING.value,
                "timestamp": now,
                "created_at": now,
                "updated_at": now,
                "attempts": 0,
                "idem_key": new.idem_key,
                "idem_hash": new.idem_hash,
                "body": new.body,
            }
            seq = (await conn.execute(insert(M).values(**values).returning(M.c.seq))).scalar_one()
            if new.media is not None:
                await conn.execute(
                    insert(MM).values(
                        session_id=new.session_id, message_id=new.id, tenant_id=new.tenant_id, data=new.media
                    )
                )
            await conn.run_sync(self._touch_chats, [(new.tenant_id, new.session_id, new.chat_id, new.id, now)])
        message = Message(
            seq=seq,
            tenant_id=new.tenant_id,
            session_id=new.session_id,
            id=new.id,
            chat_id=new.chat_id,
            sender=new.sender,
            from_me=True,
            kind=new.kind,
            status=MessageStatus.PENDING,
            timestamp=now,
            created_at=now,
            updated_at=now,
            attempts=0,
            error=None,
            body=new.body,
        )
        return message, True

    async def queued(self, tenant_id: TenantId, session_id: SessionId, limit: int) -> list[Message]:
        query = (
            select(M)
            .where(M.c.session_id == session_id, M.c.tenant_id == tenant_id, _IS_QUEUED)
            .order_by(M.c.seq)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_message(row) for row in await conn.execute(query)]

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
            # The lease row, locked on PostgreSQL until the commit: a worker taking the session over waits for it.
            holder = conn.execute(
                select(L.c.owner, L.c.epoch).where(L.c.session_id == session_id).with_for_update()
            ).first()
            if holder is None or (holder.owner, holder.epoch) != (owner, epoch):
                raise LeaseLost(f"session {session_id}: its lease has moved on; nothing is sent from here")
            moved = conn.execute(
                update(M)
                .where(
                    M.c.session_id == session_id,
                    M.c.tenant_id == tenant_id,
                    M.c.id.in_(list(ids)),
                    M.c.status == MessageStatus.PENDING.value,
                )
                .values(status=MessageStatus.SENDING.value, attempts=M.c.attempts + 1, updated_at=now)
                .returning(M.c.id)
            )
            return [row.id for row in moved]

        # On SQLite's writer thread, whole: a sender stopped in the middle cannot cut the transaction off.
        return await self._db.run_write(work)

    async def update_status(self, updates: Sequence[StatusUpdate]) -> list[Message]:
        if not updates:
            return []

        def work(conn: Connection) -> tuple[list[Message], Committed]:
            changed, events = self._apply(conn, updates)
            return changed, self._events.write(conn, events)

        changed, committed = await self._db.run_write(work)
        self._events.notify(committed)
        return changed

    def _apply(self, conn: Connection, updates: Sequence[StatusUpdate]) -> tuple[list[Message], list[Event]]:
        keys = sorted({(u.session_id, u.message_id) for u in updates})
        current: dict[tuple[str, str], Message] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = conn.execute(select(M).where(tuple_(M.c.session_id, M.c.id).in_(chunk), M.c.from_me == 1))
            current.update({(row.session_id, row.id): _message(row) for row in rows})
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
            update(M)
            .where(M.c.session_id == bindparam("b_session"), M.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                error=bindparam("b_error"),
                timestamp=bindparam("b_ts"),
                updated_at=bindparam("b_at"),
            ),
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
        for start in range(0, len(gone), _CHUNK):
            chunk = gone[start : start + _CHUNK]
            conn.execute(delete(MM).where(tuple_(MM.c.session_id, MM.c.message_id).in_(chunk)))
        return list(changed.values()), events

    async def fail_queued(self, tenant_id: TenantId, session_id: SessionId, session_name: str, error: str) -> int:
        def work(conn: Connection) -> tuple[list[Message], Committed]:
            ids = conn.execute(
                select(M.c.id)
                .where(M.c.session_id == session_id, M.c.tenant_id == tenant_id, _IS_QUEUED)
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

    async def list_messages(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        chat_id: str | None,
        sender: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: int | None = None,
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
            query = query.where(M.c.timestamp < until)
        if cursor is not None:
            query = query.where(M.c.seq < cursor if newest_first else M.c.seq > cursor)
        query = query.order_by(M.c.seq.desc() if newest_first else M.c.seq).limit(limit)
        async with self._db.read() as conn:
            return [_message(row) for row in await conn.execute(query)]

    async def list_chats(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: tuple[float, str] | None = None
    ) -> list[Chat]:
        query = (
            select(C, K.c.name, K.c.push_name, G.c.subject)
            .select_from(
                C.outerjoin(K, and_(K.c.session_id == C.c.session_id, K.c.id == C.c.id)).outerjoin(
                    G, and_(G.c.session_id == C.c.session_id, G.c.id == C.c.id)
                )
            )
            .where(C.c.session_id == session_id, C.c.tenant_id == tenant_id)
        )
        if cursor is not None:
            query = query.where(tuple_(C.c.last_message_at, C.c.id) < tuple_(cursor[0], cursor[1]))
        query = query.order_by(C.c.last_message_at.desc(), C.c.id.desc()).limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Chat(
                id=row.id,
                name=row.subject or row.name or row.push_name,
                is_group=is_group(row.id),
                last_message_id=row.last_message_id,
                last_message_at=row.last_message_at,
                messages=row.messages,
            )
            for row in rows
        ]

    async def list_contacts(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: str | None = None
    ) -> list[Contact]:
        query = select(K).where(K.c.session_id == session_id, K.c.tenant_id == tenant_id)
        if cursor is not None:
            query = query.where(K.c.id > cursor)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(K.c.id).limit(limit))).all()
        return [Contact(row.id, row.name, row.push_name, row.updated_at) for row in rows]

    async def list_groups(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: str | None = None
    ) -> list[Group]:
        query = select(G).where(G.c.session_id == session_id, G.c.tenant_id == tenant_id)
        if cursor is not None:
            query = query.where(G.c.id > cursor)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(G.c.id).limit(limit))).all()
        return [Group(row.id, row.subject, json.loads(row.participants), row.updated_at) for row in rows]

    async def put_contacts(self, tenant_id: TenantId, session_id: SessionId, contacts: Sequence[Contact]) -> None:
        if not contacts:
            return
        rows = [
            {
                "session_id": session_id,
                "id": c.id,
                "tenant_id": tenant_id,
                "name": c.name,
                "push_name": c.push_name,
                "updated_at": c.updated_at,
            }
            for c in contacts
        ]
        async with self._db.write() as conn:
            await conn.execute(self._contact_upsert, rows)

    async def put_groups(self, tenant_id: TenantId, session_id: SessionId, groups: Sequence[Group]) -> None:
        if not groups:
            return
        rows = [
            {
                "session_id": session_id,
                "id": g.id,
                "tenant_id": tenant_id,
                "subject": g.subject,
                "participants": json.dumps(g.participants),
                "updated_at": g.updated_at,
            }
            for g in groups
        ]
        async with self._db.write() as conn:
            await conn.execute(self._group_upsert, rows)

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
        query = select(M.c.session_id).where(_IS_QUEUED).distinct()
        async with self._db.read() as conn:
            return {SessionId(row.session_id) for row in await conn.execute(query)}

    async def forget_session(self, conn: AsyncConnection, session_id: SessionId) -> None:
        """Inside the session's deletion: everything stored for it."""
        for table in (M, MM, C, K, G):
            await conn.execute(delete(table).where(table.c.session_id == session_id))


def _ack_event(update: StatusUpdate, before: Message, after: Message, now: float) -> Event:
    payload: dict[str, Any] = {
        "id": after.id,
        "chatId": after.chat_id,
        "fromMe": True,
        "status": after.status.value,
        "previous": before.status.value if reported(before.status) else None,
        "timestamp": after.timestamp,
    }
    if after.status is MessageStatus.FAILED:
        payload["error"] = after.error
    return Event.new(EventType.MESSAGE_ACK, update.tenant_id, update.session_id, update.session_name, now, payload)

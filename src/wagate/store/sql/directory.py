"""Each session's directory in SQL: chats (counted by the messages), contacts and groups (from the engine)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import and_, select, tuple_

from wagate.domain.messages import Chat, Contact, Group, is_group
from wagate.ids import SessionId, TenantId
from wagate.store.contracts.directory import DirectoryStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database

__all__ = ["C", "G", "K", "SqlDirectoryStore"]

C = schema.chats
K = schema.contacts
G = schema.chat_groups


class SqlDirectoryStore(DirectoryStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        self._contact_upsert = db.upsert(K, ["session_id", "id"], ["name", "push_name", "updated_at"])
        self._group_upsert = db.upsert(G, ["session_id", "id"], ["subject", "participants", "updated_at"])

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

"""Each session's directory in SQL: chats (counted by the messages), contacts and groups (from the engine)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, tuple_

from wagate.domain.messages import Chat, Contact, Group, is_group
from wagate.ids import SessionId, TenantId
from wagate.store.contracts.directory import ChatOrder, DirectoryStore, NameOrder
from wagate.store.sql import schema
from wagate.store.sql.db import Database

__all__ = ["C", "G", "K", "SqlDirectoryStore"]

C = schema.chats
K = schema.contacts
G = schema.chat_groups


def _ordered(
    query: Select[Any], keys: Sequence[ColumnElement[Any]], descending: bool, cursor: tuple[Any, ...] | None
) -> Select[Any]:
    """``query`` sorted by ``keys`` (the last one unique), after ``cursor`` (their values) when one is given."""
    if cursor is not None:
        row, at = tuple_(*keys), tuple_(*cursor)
        query = query.where(row < at if descending else row > at)
    return query.order_by(*(key.desc() if descending else key for key in keys))


def _by_name(name: ColumnElement[Any], key: ColumnElement[Any], descending: bool) -> list[ColumnElement[Any]]:
    """Sorted by ``name`` (null names last, whichever the direction), then by the unique ``key``."""
    nameless = (name.is_(None)).asc()
    return [nameless, name.desc() if descending else name.asc(), key.desc() if descending else key.asc()]


class SqlDirectoryStore(DirectoryStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        self._contact_upsert = db.upsert(K, ["session_id", "id"], ["name", "push_name", "updated_at"])
        self._group_upsert = db.upsert(G, ["session_id", "id"], ["subject", "participants", "updated_at"])

    async def list_chats(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        limit: int,
        offset: int = 0,
        order: ChatOrder = ChatOrder.RECENT,
        descending: bool = True,
        cursor: tuple[float, str] | str | None = None,
        ids: Collection[str] | None = None,
    ) -> list[Chat]:
        name = func.coalesce(G.c.subject, K.c.name, K.c.push_name)
        query = (
            select(C, name.label("shown"))
            .select_from(
                C.outerjoin(K, and_(K.c.session_id == C.c.session_id, K.c.id == C.c.id)).outerjoin(
                    G, and_(G.c.session_id == C.c.session_id, G.c.id == C.c.id)
                )
            )
            .where(C.c.session_id == session_id, C.c.tenant_id == tenant_id)
        )
        if ids is not None:
            query = query.where(C.c.id.in_(list(ids)))
        if order is ChatOrder.NAME:
            query = query.order_by(*_by_name(name, C.c.id, descending))
        elif order is ChatOrder.ID:
            query = _ordered(query, [C.c.id], descending, None if cursor is None else (cursor,))
        else:
            at = cursor if isinstance(cursor, tuple) else None
            query = _ordered(query, [C.c.last_message_at, C.c.id], descending, at)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
        return [
            Chat(
                id=row.id,
                name=row.shown,
                is_group=is_group(row.id),
                last_message_id=row.last_message_id,
                last_message_at=row.last_message_at,
                messages=row.messages,
            )
            for row in rows
        ]

    async def list_contacts(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        limit: int,
        offset: int = 0,
        order: NameOrder = NameOrder.ID,
        descending: bool = False,
        cursor: str | None = None,
    ) -> list[Contact]:
        query = select(K).where(K.c.session_id == session_id, K.c.tenant_id == tenant_id)
        if order is NameOrder.NAME:
            query = query.order_by(*_by_name(func.coalesce(K.c.name, K.c.push_name), K.c.id, descending))
        else:
            query = _ordered(query, [K.c.id], descending, None if cursor is None else (cursor,))
        async with self._db.read() as conn:
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
        return [Contact(row.id, row.name, row.push_name, row.updated_at) for row in rows]

    async def get_contact(self, tenant_id: TenantId, session_id: SessionId, contact_id: str) -> Contact | None:
        query = select(K).where(K.c.session_id == session_id, K.c.tenant_id == tenant_id, K.c.id == contact_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return Contact(row.id, row.name, row.push_name, row.updated_at) if row else None

    async def list_groups(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        limit: int,
        offset: int = 0,
        order: NameOrder = NameOrder.ID,
        descending: bool = False,
        cursor: str | None = None,
    ) -> list[Group]:
        query = select(G).where(G.c.session_id == session_id, G.c.tenant_id == tenant_id)
        if order is NameOrder.NAME:
            query = query.order_by(*_by_name(G.c.subject, G.c.id, descending))
        else:
            query = _ordered(query, [G.c.id], descending, None if cursor is None else (cursor,))
        async with self._db.read() as conn:
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
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

"""WebSocket tickets in SQL: single-use, short-lived, stored as a hash, valid only while their API key is."""

from __future__ import annotations

from sqlalchemy import delete, insert, select

from wagate.clock import Clock
from wagate.ids import ApiKeyId, TenantId
from wagate.store.contracts.accounts import TicketStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database

__all__ = ["K", "SqlTicketStore", "T"]

T = schema.ws_tickets
K = schema.api_keys


class SqlTicketStore(TicketStore):
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def issue(self, tenant_id: TenantId, key_id: ApiKeyId, ticket_hash: str, expires_at: float) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(T).where(T.c.expires_at < self._clock()))
            await conn.execute(
                insert(T).values(ticket_hash=ticket_hash, tenant_id=tenant_id, key_id=key_id, expires_at=expires_at)
            )

    async def redeem(self, ticket_hash: str) -> tuple[TenantId, ApiKeyId] | None:
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    delete(T).where(T.c.ticket_hash == ticket_hash).returning(T.c.tenant_id, T.c.key_id, T.c.expires_at)
                )
            ).first()
            if row is None or row.key_id is None or row.expires_at < self._clock():
                return None
            active = (
                await conn.execute(
                    select(K.c.id).where(K.c.id == row.key_id, K.c.tenant_id == row.tenant_id, K.c.revoked_at.is_(None))
                )
            ).first()
        return (TenantId(row.tenant_id), ApiKeyId(row.key_id)) if active is not None else None

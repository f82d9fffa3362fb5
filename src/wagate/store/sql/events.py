"""The event history in SQL: appended, read by tenant or by sequence number, resealed, pruned.

Events are written by ``writer.EventWriter`` inside the transaction of the change they report; ``append`` is that
transaction for events that report no change of their own (messages, QR codes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, not_, select, update

from wagate.clock import Clock
from wagate.domain.events import CommitListener, Event
from wagate.domain.webhooks import DeliveryState
from wagate.ids import EventId, SessionId, TenantId
from wagate.store.contracts.events import EventStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.writer import EventWriter, open_event

__all__ = ["D", "E", "SqlEventStore"]

E = schema.events
D = schema.webhook_deliveries


class SqlEventStore(EventStore):
    def __init__(self, db: Database, clock: Clock, writer: EventWriter) -> None:
        self._db = db
        self._clock = clock
        self._writer = writer

    @property
    def listeners(self) -> list[CommitListener]:
        return self._writer.listeners

    def set_environment(self, environment: dict[str, Any]) -> None:
        self._writer.environment = environment

    def set_claimer(self, owner: str | None, ttl: float) -> None:
        self._writer.claimer = owner
        self._writer.claim_ttl = ttl

    async def events_by_seq(self, seqs: Sequence[int]) -> list[Event]:
        if not seqs:
            return []
        async with self._db.read() as conn:
            rows = (await conn.execute(select(E).where(E.c.seq.in_(list(seqs))).order_by(E.c.seq))).all()
        return [open_event(self._writer.sealer, row)[0] for row in rows]

    async def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        committed = await self._db.run_write(lambda conn: self._writer.write(conn, events))
        self._writer.notify(committed)

    async def list_events(
        self,
        tenant_id: TenantId,
        *,
        session_id: SessionId | None = None,
        types: Sequence[str] | None = None,
        after: EventId | None = None,
        limit: int = 100,
    ) -> list[Event]:
        query = select(E).where(E.c.tenant_id == tenant_id)
        if session_id is not None:
            query = query.where(E.c.session_id == session_id)
        if types:
            query = query.where(E.c.type.in_(list(types)))
        if after is not None:
            query = query.where(E.c.id > after)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(E.c.seq).limit(limit))).all()
        return [open_event(self._writer.sealer, row)[0] for row in rows]

    async def reseal_all_tenants(self, active_key: str) -> int:
        sealer = self._writer.sealer
        done = 0
        after = 0
        while True:
            query = (
                select(E.c.seq, E.c.id, E.c.tenant_id, E.c.session_id, E.c.kek_id, E.c.sealed)
                .where(E.c.kek_id != active_key, E.c.seq > after)
                .order_by(E.c.seq)
                .limit(500)
            )
            async with self._db.write() as conn:
                rows = (await conn.execute(query)).all()
                for row in rows:
                    parts = (row.tenant_id, row.session_id, row.id)
                    kek_id, sealed = sealer.seal(sealer.open(row.kek_id, row.sealed, "event", *parts), "event", *parts)
                    await conn.execute(update(E).where(E.c.seq == row.seq).values(kek_id=kek_id, sealed=sealed))
            done += len(rows)
            if len(rows) < 500:
                return done
            after = rows[-1].seq

    async def prune_all_tenants(self, before: float, chunk: int = 5000) -> int:
        finished = D.c.state.in_([DeliveryState.DELIVERED, DeliveryState.DEAD])
        old_deliveries = select(D.c.seq).where(finished, D.c.updated_at < before).order_by(D.c.seq).limit(chunk)
        await self._db.delete_in_chunks(delete(D).where(D.c.seq.in_(old_deliveries.scalar_subquery())), chunk)
        needed = select(D.c.event_seq).where(D.c.event_seq == E.c.seq)
        old_events = select(E.c.seq).where(E.c.at < before, not_(needed.exists())).order_by(E.c.seq).limit(chunk)
        return await self._db.delete_in_chunks(delete(E).where(E.c.seq.in_(old_events.scalar_subquery())), chunk)

"""The live workers in SQL: one row per worker, alive while it beats and then while it renews its leases."""

from __future__ import annotations

from sqlalchemy import and_, delete, func, select, update

from wagate.clock import Clock
from wagate.ids import SessionId
from wagate.store.contracts.workers import WorkerStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database

__all__ = ["L", "SqlWorkerStore", "W"]

L = schema.session_leases
W = schema.workers
_WORKERS_KEPT = 3600.0  # seconds a worker's row is kept after it expired: a sign that others may be starting


class SqlWorkerStore(WorkerStore):
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._beat = db.upsert(W, keys=("owner",), update=("url",))

    async def beat(self, owner: str, ttl: float, url: str | None = None) -> dict[str, int]:
        now = self._clock()
        async with self._db.write() as conn:
            await conn.execute(self._beat, [{"owner": owner, "started_at": now, "expires_at": now + ttl, "url": url}])
            await conn.execute(delete(W).where(W.c.expires_at <= now - _WORKERS_KEPT))
            held = (
                select(W.c.owner, func.count(L.c.session_id).label("leases"))
                .select_from(W.outerjoin(L, and_(L.c.owner == W.c.owner, L.c.expires_at > now)))
                .where(W.c.expires_at > now)
                .group_by(W.c.owner)
            )
            return {row.owner: int(row.leases) for row in await conn.execute(held)}

    async def runs_on(self, session_id: SessionId) -> tuple[str, str | None] | None:
        now = self._clock()
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(W.c.owner, W.c.url)
                    .select_from(L.join(W, W.c.owner == L.c.owner))
                    .where(L.c.session_id == session_id, L.c.expires_at > now, W.c.expires_at > now)
                )
            ).first()
        return (row.owner, row.url) if row else None

    async def leave(self, owner: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(update(W).where(W.c.owner == owner).values(expires_at=self._clock()))

    async def recent_workers(self, within: float, *, besides: str) -> int:
        since = self._clock() - min(within, _WORKERS_KEPT)
        async with self._db.read() as conn:
            query = select(func.count()).select_from(W).where(W.c.expires_at > since, ~W.c.owner.startswith(besides))
            return int((await conn.execute(query)).scalar_one())

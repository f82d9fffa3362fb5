"""Session leases in SQL: who runs each session (owner, epoch, expiry).

Writes that must be fenced by a lease (auth records, statuses) check it in their own transactions (``auth``,
``commit``); this module takes, renews and releases leases. Renewing them keeps their worker alive too (``workers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update

from wagate.clock import Clock
from wagate.domain.sessions import Desired, Lease
from wagate.ids import SessionId
from wagate.store.contracts.leases import LeaseStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.prepared import InList, Tx, record_type, rows_in
from wagate.store.sql.status import to_reconcile

__all__ = ["L", "S", "SqlLeaseStore", "W"]

L = schema.session_leases
S = schema.sessions
W = schema.workers
_CHUNK = 500
_HELD = InList(lambda _, items: select(L).where(rows_in([L.c.session_id], items)), 1)
_LEASE_ROW = record_type(L)


class SqlLeaseStore(LeaseStore):
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def acquire_many(
        self,
        session_ids: Sequence[SessionId],
        owner: str,
        ttl: float,
        *,
        takeover: str | None = None,
        limit: int | None = None,
        wanted: Desired | None = None,
    ) -> dict[SessionId, Lease]:
        now = self._clock()
        taken: dict[SessionId, Lease] = {}
        room = limit if limit is not None else len(session_ids)
        async with self._db.write() as conn:
            # Only the leases this owner may take are locked, and in one order whatever the caller's: workers
            # claiming at once (each its sessions shuffled) wait for each other's rows instead of deadlocking, and
            # the live leases of others, which their renewals and fenced writes lock, are left alone. (A lease
            # renewed while this waits for its lock is read again, and then is not one to take.)
            ids = sorted(session_ids)
            takeable = [L.c.owner.is_(None), L.c.expires_at <= now, L.c.owner == owner]
            if takeover:
                takeable.append(L.c.owner.startswith(takeover, autoescape=True))
            rows: dict[str, Any] = {}
            for chunk in (ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)):
                query = select(L).where(L.c.session_id.in_(chunk), or_(*takeable)).order_by(L.c.session_id)
                if self._db.dialect == "postgresql":
                    query = query.with_for_update()
                locked = {row.session_id: row for row in await conn.execute(query)}
                if wanted is not None:
                    # A statement of its own, after the locks: on PostgreSQL it sees every status committed before
                    # the leases were released (a runner writes its last status, then releases its lease).
                    still = select(S.c.id).where(S.c.id.in_(list(locked)), to_reconcile(wanted))
                    keep = set((await conn.execute(still)).scalars())
                    locked = {i: row for i, row in locked.items() if i in keep}
                rows |= locked
            params = []
            for row in (rows[i] for i in session_ids if i in rows):  # claimed in the caller's order
                live = row.owner is not None and row.expires_at > now
                ours = row.owner == owner
                earlier = live and bool(takeover) and row.owner.startswith(takeover)
                if live and not ours and not earlier:
                    continue
                if not (live and (ours or earlier)):  # free or expired: counts against the limit
                    if room <= 0:
                        continue
                    room -= 1
                epoch = row.epoch if live and ours else row.epoch + 1
                lease = Lease(SessionId(row.session_id), owner, epoch, now + ttl, acquired_at=now)
                taken[lease.session_id] = lease
                params.append({"b_id": row.session_id, "b_epoch": epoch, "b_expires": now + ttl, "b_now": now})
            if params:
                await conn.execute(
                    update(L)
                    .where(L.c.session_id == bindparam("b_id"))
                    .values(
                        owner=owner,
                        epoch=bindparam("b_epoch"),
                        expires_at=bindparam("b_expires"),
                        acquired_at=bindparam("b_now"),
                    ),
                    params,
                )
        return taken

    async def renew(self, session_id: SessionId, owner: str, epoch: int, ttl: float) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                update(L)
                .where(L.c.session_id == session_id, L.c.owner == owner, L.c.epoch == epoch)
                .values(expires_at=self._clock() + ttl)
            )
        return result.rowcount == 1

    async def renew_all(self, owner: str, ttl: float) -> set[SessionId]:
        until = self._clock() + ttl
        async with self._db.write() as conn:
            await conn.execute(update(L).where(L.c.owner == owner).values(expires_at=until))
            await conn.execute(update(W).where(W.c.owner == owner).values(expires_at=until))
            rows = await conn.execute(select(L.c.session_id).where(L.c.owner == owner))
            return {SessionId(row.session_id) for row in rows}

    async def next_lapse(self, *, besides: str, after: float) -> float | None:
        query = select(func.min(L.c.expires_at)).where(
            L.c.owner.is_not(None), L.c.owner != besides, L.c.expires_at > after
        )
        async with self._db.read() as conn:
            found = (await conn.execute(query)).scalar_one()
        return float(found) if found is not None else None

    async def held(self, session_ids: Sequence[SessionId]) -> dict[SessionId, Lease]:
        ids = [(session_id,) for session_id in sorted(set(session_ids))]
        if not ids:
            return {}
        rows = await self._db.run_read(lambda conn: _HELD.fetch(Tx(conn), ids))  # what the API shows of sessions
        return {lease.session_id: lease for lease in (_lease(_LEASE_ROW(row)) for row in rows)}

    async def release(self, session_id: SessionId, owner: str, epoch: int) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(L)
                .where(L.c.session_id == session_id, L.c.owner == owner, L.c.epoch == epoch)
                .values(owner=None, expires_at=0.0)
            )

    async def release_all(self, owner: str) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(update(L).where(L.c.owner == owner).values(owner=None, expires_at=0.0))
        return int(result.rowcount)

    async def get(self, session_id: SessionId) -> Lease | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(L).where(L.c.session_id == session_id))).first()
        return _lease(row) if row else None


def _lease(row: Any) -> Lease:
    return Lease(SessionId(row.session_id), row.owner, row.epoch, row.expires_at, acquired_at=row.acquired_at)

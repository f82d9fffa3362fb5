"""The webhook outbox in SQL: deliveries claimed by a worker in order per (endpoint, session), retried, dead-lettered.

A delivery row is made with its event, in the transaction of the change (``writer.EventWriter``); this module
claims, renews, releases and settles them, and lists them for the API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.clock import Clock
from wagate.domain.payloads import upgraded
from wagate.domain.webhooks import Delivery, DeliveryState, Outgoing
from wagate.ids import EventId, SessionId, TenantId, WebhookId
from wagate.store.contracts.auth import Sealer
from wagate.store.contracts.webhooks import OutboxStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.prepared import InList, Tx, rows_in

__all__ = [
    "DEAD",
    "PENDING",
    "D",
    "E",
    "SqlOutboxStore",
    "W",
    "claimable",
    "delivery_from",
    "list_query",
    "pending_before_query",
    "scan_query",
]

E = schema.events
W = schema.webhooks
D = schema.webhook_deliveries

# The partial indexes' own conditions (migration 0006), written as literals: PostgreSQL matches a partial index to a
# bound parameter only in a plan made for the parameter's value, never in the generic plan a prepared statement
# gets once it has run a few times (SQLite plans for the values bound either way).
PENDING = D.c.state == literal_column(f"'{DeliveryState.PENDING}'")
DEAD = D.c.state == literal_column(f"'{DeliveryState.DEAD}'")
_STATE = {DeliveryState.PENDING: PENDING, DeliveryState.DEAD: DEAD}

_DELIVERY_COLUMNS = (*D.c, E.c.id.label("event_id"), E.c.type.label("event_type"))
_DELIVERED = InList(
    lambda _, seqs: (
        update(D)
        .where(rows_in([D.c.seq], seqs))
        .values(
            state=DeliveryState.DELIVERED,
            attempts=D.c.attempts + 1,
            last_status=bindparam("b_status"),
            last_error=None,
            claimed_by=None,
            claim_until=0.0,
            updated_at=bindparam("b_at"),
        )
    ),
    width=1,
    extra=("b_status", "b_at"),
)


def delivery_from(row: Any) -> Delivery:
    return Delivery(
        seq=row.seq,
        webhook_id=WebhookId(row.webhook_id),
        tenant_id=TenantId(row.tenant_id),
        session_id=SessionId(row.session_id),
        event_id=EventId(row.event_id),
        event_type=row.event_type,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def claimable(takeover: str, now: float) -> Any:
    """A delivery no other live worker holds: unclaimed, expired, or held by this worker (any run of it)."""
    return or_(D.c.claimed_by.is_(None), D.c.claim_until < now, D.c.claimed_by.startswith(takeover, autoescape=True))


class SqlOutboxStore(OutboxStore):
    def __init__(self, db: Database, clock: Clock, sealer: Sealer) -> None:
        self._db = db
        self._clock = clock
        self._sealer = sealer

    async def claim(
        self, owner: str, *, takeover: str, ttl: float, limit: int, held: Callable[[int], bool] = lambda seq: False
    ) -> list[Outgoing]:
        now = self._clock()
        # The scan reads only what deciding needs (a worker with a backlog walks past thousands of its own rows each
        # round); the events' bodies are read for the rows it claims.
        scan = _Scan(owner, takeover, now, held)
        async with self._db.write() as conn:
            after = 0
            for _ in range(_MAX_PAGES):  # past deliveries this worker is sending, up to a bound per round
                rows = (await conn.execute(scan_query(after, limit))).all()
                scan.feed(rows)
                if len(rows) < limit or len(scan.chosen) >= limit:
                    break
                after = rows[-1].seq
            chosen = scan.chosen
            if not chosen:
                return []
            claimed = await self._take(conn, [row.seq for row in chosen], takeover, now + ttl, now, owner)
            full = await self._full_rows(conn, sorted(claimed))
        out: list[Outgoing] = []
        blocked: set[tuple[str, str]] = set()
        for light in chosen:
            group = (light.webhook_id, light.session_id)
            if group in blocked or light.seq not in claimed:
                blocked.add(group)  # a gap: what follows waits for the next round, in order
                continue
            row = full[light.seq]
            stored = self._sealer.open(row.kek_id, row.sealed, "event", row.etid, row.session_id, row.event_id)
            out.append(Outgoing(delivery_from(row), upgraded(stored.decode())[0]))
        taken = {o.delivery.seq for o in out}
        leftover = [seq for seq in claimed if seq not in taken]
        if leftover:
            await self.release(owner, leftover)
        return out

    @staticmethod
    async def _full_rows(conn: AsyncConnection, seqs: list[int]) -> dict[int, Any]:
        """The claimed deliveries with their events (sealed body included), by seq."""
        rows: dict[int, Any] = {}
        for start in range(0, len(seqs), 500):
            query = (
                select(*_DELIVERY_COLUMNS, E.c.kek_id, E.c.sealed, E.c.tenant_id.label("etid"))
                .join(E, E.c.seq == D.c.event_seq)
                .where(D.c.seq.in_(seqs[start : start + 500]))
            )
            rows.update((row.seq, row) for row in await conn.execute(query))
        return rows

    async def _take(
        self, conn: AsyncConnection, seqs: list[int], takeover: str, until: float, now: float, owner: str
    ) -> set[int]:
        claimed: set[int] = set()
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            result = await conn.execute(
                update(D)
                .where(D.c.seq.in_(chunk), PENDING, claimable(takeover, now))
                .values(claimed_by=owner, claim_until=until)
                .returning(D.c.seq)
            )
            claimed.update(row.seq for row in result)
        return claimed

    async def pending_before(self, webhook_id: WebhookId, session_id: SessionId, seq: int) -> bool:
        async with self._db.read() as conn:
            return (await conn.execute(pending_before_query(webhook_id, session_id, seq))).first() is not None

    async def renew_claims(self, owner: str, ttl: float) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(D).where(D.c.claimed_by == owner, PENDING).values(claim_until=self._clock() + ttl)
            )

    async def release(self, owner: str, seqs: Sequence[int]) -> None:
        async with self._db.write() as conn:
            for start in range(0, len(seqs), 500):
                await conn.execute(
                    update(D)
                    .where(D.c.seq.in_(list(seqs[start : start + 500])), D.c.claimed_by == owner)
                    .values(claimed_by=None, claim_until=0.0)
                )

    async def mark_delivered(self, seqs: Sequence[int], status: int) -> None:
        now = self._clock()
        items = [(seq,) for seq in seqs]
        await self._db.run_write(lambda conn: _DELIVERED.run(Tx(conn), items, (status, now)))

    async def mark_failed(
        self, seq: int, *, attempts: int, next_attempt_at: float, status: int | None, error: str, dead: bool
    ) -> None:
        values: dict[str, Any] = {
            "attempts": attempts,
            "next_attempt_at": next_attempt_at,
            "last_status": status,
            "last_error": error[:500],
            "updated_at": self._clock(),
        }
        if dead:
            values.update(state=DeliveryState.DEAD, claimed_by=None, claim_until=0.0)
        async with self._db.write() as conn:
            await conn.execute(update(D).where(D.c.seq == seq).values(**values))

    async def mark_refused(self, seqs: Sequence[int], error: str) -> None:
        now = self._clock()
        async with self._db.write() as conn:
            for start in range(0, len(seqs), 500):
                await conn.execute(
                    update(D)
                    .where(D.c.seq.in_(list(seqs[start : start + 500])), PENDING)
                    .values(
                        state=DeliveryState.DEAD,
                        attempts=D.c.attempts + 1,
                        next_attempt_at=now,
                        last_status=None,
                        last_error=error[:500],
                        claimed_by=None,
                        claim_until=0.0,
                        updated_at=now,
                    )
                )

    async def backlog(self, tenant_id: TenantId) -> dict[WebhookId, tuple[int, int]]:
        found: dict[WebhookId, list[int]] = {}
        async with self._db.read() as conn:
            for index, condition in enumerate((PENDING, DEAD)):  # each counted from its own partial index
                query = (
                    select(D.c.webhook_id, func.count())
                    .where(condition, D.c.tenant_id == tenant_id)
                    .group_by(D.c.webhook_id)
                )
                for webhook_id, count in await conn.execute(query):
                    found.setdefault(WebhookId(webhook_id), [0, 0])[index] = int(count)
        return {webhook_id: (pending, dead) for webhook_id, (pending, dead) in found.items()}

    async def list_deliveries(
        self, tenant_id: TenantId, webhook_id: WebhookId, *, state: str | None, limit: int, before: int | None = None
    ) -> list[Delivery]:
        async with self._db.read() as conn:
            rows = (await conn.execute(list_query(tenant_id, webhook_id, state, limit, before))).all()
        return [delivery_from(row) for row in rows]

    async def redeliver(self, tenant_id: TenantId, webhook_id: WebhookId, seqs: Sequence[int] | None) -> int:
        query = update(D).where(D.c.tenant_id == tenant_id, D.c.webhook_id == webhook_id, DEAD)
        if seqs is not None:
            query = query.where(D.c.seq.in_(list(seqs)))
        now = self._clock()
        async with self._db.write() as conn:
            result = await conn.execute(
                query.values(
                    state=DeliveryState.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    claimed_by=None,
                    claim_until=0.0,
                    updated_at=now,
                )
            )
        return int(result.rowcount or 0)


_MAX_PAGES = 20


# The outbox's lookups, each answered from its own index (tests/contract/test_events_store.py reads their plans).


def scan_query(after: int, limit: int) -> Select[Any]:
    """Pending deliveries of enabled endpoints after ``after``, oldest first: what a claim walks (ix_deliveries_due)."""
    return (
        select(D.c.seq, D.c.webhook_id, D.c.session_id, D.c.claimed_by, D.c.claim_until, D.c.next_attempt_at)
        .join(W, W.c.id == D.c.webhook_id)
        .where(PENDING, W.c.disabled_reason.is_(None), D.c.seq > after)
        .order_by(D.c.seq)
        .limit(limit)
    )


def pending_before_query(webhook_id: str, session_id: str, seq: int) -> Select[Any]:
    """A pending delivery of the group older than ``seq``, if any (ix_deliveries_queue)."""
    return (
        select(D.c.seq)
        .where(D.c.webhook_id == webhook_id, D.c.session_id == session_id, PENDING, D.c.seq < seq)
        .limit(1)
    )


def list_query(tenant_id: str, webhook_id: str, state: str | None, limit: int, before: int | None) -> Select[Any]:
    """A webhook's deliveries (of one state), newest first (ix_deliveries_webhook; dead letters: ix_deliveries_dead)."""
    query = (
        select(*_DELIVERY_COLUMNS)
        .join(E, E.c.seq == D.c.event_seq)
        .where(D.c.tenant_id == tenant_id, D.c.webhook_id == webhook_id)
    )
    if state is not None:
        query = query.where(_STATE.get(state, D.c.state == state))
    if before is not None:
        query = query.where(D.c.seq < before)
    return query.order_by(D.c.seq.desc()).limit(limit)


class _Scan:
    """Walks pending rows in order and keeps the runs this worker may take: per group (endpoint, session), from
    its oldest pending row while rows are free to claim. A group whose oldest row another live worker holds, this
    worker is already sending (``held``), or is waiting for its retry time is skipped whole: its later rows must
    not overtake it. A row claimed by this worker that it is not sending (a claim it lost track of) is free."""

    def __init__(self, owner: str, takeover: str, now: float, held: Callable[[int], bool]) -> None:
        self.owner = owner
        self.takeover = takeover
        self.now = now
        self.held = held
        self.seen: set[tuple[str, str]] = set()
        self.stopped: set[tuple[str, str]] = set()
        self.chosen: list[Any] = []

    def feed(self, rows: Sequence[Any]) -> None:
        for row in rows:
            group = (row.webhook_id, row.session_id)
            if group in self.stopped:
                continue
            first = group not in self.seen
            self.seen.add(group)
            if first and row.next_attempt_at > self.now:
                self.stopped.add(group)
                continue
            if row.claimed_by == self.owner:
                free = not self.held(row.seq)
            else:
                free = row.claimed_by is None or row.claim_until < self.now or row.claimed_by.startswith(self.takeover)
            if not free:
                self.stopped.add(group)
                continue
            self.chosen.append(row)

"""Events and the webhook outbox in SQL.

``EventWriter.write`` runs inside the caller's transaction: the events rows (sealed envelopes) and one delivery row
per matching enabled webhook commit together with the change they report. Listeners hear of them after the commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, delete, insert, not_, or_, select, update

from wagate.clock import Clock
from wagate.domain.events import AnnounceListener, CommitListener, Committed, Event, EventFilter, EventType
from wagate.domain.webhooks import Delivery, DeliveryState, Outgoing
from wagate.ids import ApiKeyId, EventId, SessionId, TenantId, WebhookId
from wagate.store.contracts.accounts import TicketStore
from wagate.store.contracts.auth import Sealer
from wagate.store.contracts.events import EventStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.peers import NOTIFY, announcements, channel, notice, parse_announcement
from wagate.store.sql.prepared import InList, InsertMany, Tx, rows_in

E = schema.events
W = schema.webhooks
D = schema.webhook_deliveries
T = schema.ws_tickets
K = schema.api_keys

log = logging.getLogger("wagate.events")

_INSERT_EVENTS = InsertMany(
    E, ("id", "tenant_id", "session_id", "session_name", "type", "at", "kek_id", "sealed"), returning=("id", "seq")
)
_INSERT_DELIVERIES = InsertMany(
    D,
    (
        "webhook_id",
        "tenant_id",
        "session_id",
        "event_seq",
        "state",
        "attempts",
        "next_attempt_at",
        "claimed_by",
        "claim_until",
        "created_at",
        "updated_at",
    ),
    returning=("webhook_id", "event_seq", "seq"),
)
_SUBSCRIBED = InList(
    lambda _, tenants: select(W.c.id, W.c.tenant_id, W.c.events, W.c.session_name).where(
        rows_in([W.c.tenant_id], tenants), W.c.disabled_reason.is_(None)
    ),
    width=1,
)


class PlainSealer:
    """Keeps values as they are: for a store opened without keys (tools, tests of the store alone)."""

    def seal(self, plaintext: bytes, purpose: str, *parts: str) -> tuple[str, bytes]:
        return "plain", plaintext

    def open(self, key_id: str, sealed: bytes, purpose: str, *parts: str) -> bytes:
        return sealed


def event_parts(event: Event) -> tuple[str, str, str]:
    return (event.tenant_id, event.session_id, event.id)


def open_event(sealer: Sealer, row: Any) -> tuple[Event, str]:
    """The event of an events row, and its exact body."""
    body = sealer.open(row.kek_id, row.sealed, "event", row.tenant_id, row.session_id, row.id).decode()
    envelope = json.loads(body)
    event = Event(
        id=EventId(row.id),
        type=EventType(row.type),
        tenant_id=TenantId(row.tenant_id),
        session_id=SessionId(row.session_id),
        session=row.session_name,
        timestamp=row.at,
        payload=envelope["payload"],
    )
    return event, body


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


class EventWriter:
    """Writes events and their deliveries inside a transaction; tells listeners after it commits.

    ``write`` is synchronous: it runs inside :meth:`Database.run_write` transactions (on SQLite's writer thread),
    and inside async transactions through ``await conn.run_sync(writer.write, events)``."""

    def __init__(self, db: Database, clock: Clock, sealer: Sealer) -> None:
        self._db = db
        self._clock = clock
        self.sealer = sealer
        self.listeners: list[CommitListener] = []
        self.claimer: str | None = None
        self.claim_ttl = 60.0
        self.announcer: str | None = None  # PostgreSQL: the process named in announcements, when they are made

    def write(self, conn: Connection, events: Sequence[Event]) -> Committed:
        if not events:
            return Committed([], [])
        tx = Tx(conn)
        rows = []
        bodies = []
        seal = self.sealer.seal
        for event in events:
            body = event.body()
            kek_id, sealed = seal(body.encode(), "event", event.tenant_id, event.session_id, event.id)
            bodies.append(body)
            rows.append(
                (
                    event.id,
                    event.tenant_id,
                    event.session_id,
                    event.session,
                    event.type.value,
                    event.timestamp,
                    kek_id,
                    sealed,
                )
            )
        seqs = _INSERT_EVENTS.seqs(tx, rows, key=(0,))
        if self.announcer is not None and self._db.dialect == "postgresql":
            for payload in announcements(self.announcer, events, seqs):
                conn.execute(NOTIFY, {"channel": channel(self._db.schema), "payload": payload})
        return Committed(list(events), self._queue(tx, events, seqs, bodies))

    def _queue(self, tx: Tx, events: Sequence[Event], seqs: list[int], bodies: list[str]) -> list[Outgoing]:
        tenants = sorted({e.tenant_id for e in events})
        hooks = _SUBSCRIBED.fetch(tx, [(t,) for t in tenants])
        if not hooks:
            return []
        filters = [
            (hook_id, tenant_id, EventFilter(json.loads(types), session))
            for hook_id, tenant_id, types, session in hooks
        ]
        now = self._clock()
        claimed_by, claim_until = (self.claimer, now + self.claim_ttl) if self.claimer else (None, 0.0)
        rows: list[tuple[Any, ...]] = []
        made: list[tuple[Event, str, str, int]] = []
        for event, seq, body in zip(events, seqs, bodies, strict=True):
            for hook_id, tenant_id, wanted in filters:
                if tenant_id != event.tenant_id or not wanted.matches(event):
                    continue
                rows.append(
                    (
                        hook_id,
                        event.tenant_id,
                        event.session_id,
                        seq,
                        DeliveryState.PENDING,
                        0,
                        now,
                        claimed_by,
                        claim_until,
                        now,
                        now,
                    )
                )
                made.append((event, hook_id, body, seq))
        if not rows:
            return []
        out = []
        for (event, hook_id, body, _), seq in zip(made, _INSERT_DELIVERIES.seqs(tx, rows, key=(0, 3)), strict=True):
            delivery = Delivery(
                seq=seq,
                webhook_id=WebhookId(hook_id),
                tenant_id=event.tenant_id,
                session_id=event.session_id,
                event_id=event.id,
                event_type=event.type.value,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=now,
                last_status=None,
                last_error=None,
                created_at=now,
                updated_at=now,
            )
            out.append(Outgoing(delivery, body))
        return out

    def notify(self, committed: Committed) -> None:
        """After the commit: hand the events to the bus and the deliveries to the worker."""
        if not committed.events:
            return
        for listener in self.listeners:
            try:
                listener(committed)
            except Exception:  # a listener's bug must not undo or hide a committed change
                log.exception("event listener failed")


class SqlEventStore(EventStore):
    def __init__(self, db: Database, clock: Clock, writer: EventWriter) -> None:
        self._db = db
        self._clock = clock
        self._writer = writer

    @property
    def listeners(self) -> list[CommitListener]:
        return self._writer.listeners

    def set_claimer(self, owner: str | None, ttl: float) -> None:
        self._writer.claimer = owner
        self._writer.claim_ttl = ttl

    def announce(self, process: str | None) -> None:
        self._writer.announcer = process

    @asynccontextmanager
    async def listen(self, heard: AnnounceListener) -> AsyncIterator[Callable[[], bool] | None]:
        if self._db.dialect != "postgresql":
            yield None
            return

        def on_payload(payload: str) -> None:
            announced = parse_announcement(payload)
            if announced is None:
                log.warning("ignored a notification that announces no events")
            else:
                heard(announced)

        async with self._db.listening(channel(self._db.schema), on_payload) as alive:
            yield alive

    async def tell_peers(self, process: str, changed_webhooks: Sequence[WebhookId] = ()) -> None:
        if self._db.dialect != "postgresql":
            return
        payload = notice(process, changed_webhooks)
        async with self._db.write() as conn:
            await conn.execute(NOTIFY, {"channel": channel(self._db.schema), "payload": payload})

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


def claimable(takeover: str, now: float) -> Any:
    """A delivery no other live worker holds: unclaimed, expired, or held by this worker (any run of it)."""
    return or_(D.c.claimed_by.is_(None), D.c.claim_until < now, D.c.claimed_by.startswith(takeover, autoescape=True))

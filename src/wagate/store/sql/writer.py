"""Events and their webhook outbox rows, written inside the caller's transaction.

``EventWriter.write`` runs inside the transaction of the change the events report: it stamps each event with what
WAHA's envelope carries of its session (the account, ``config.metadata``, the engine) as that transaction sees it
and with this process's environment, then writes the events rows (sealed envelopes), one delivery row per matching
enabled webhook, and on PostgreSQL the announcement to the other processes
(delivered at the commit) commit together with that change. Listeners hear of them after the commit (``notify``).
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from wagate import __version__
from wagate.clock import Clock
from wagate.domain.events import CommitListener, Committed, Event, EventFilter, EventType, Stamp
from wagate.domain.payloads import me_info, upgraded
from wagate.domain.waha import environment, waha_engine
from wagate.domain.webhooks import Delivery, DeliveryState, Outgoing
from wagate.ids import EventId, SessionId, TenantId, WebhookId
from wagate.store.contracts.auth import Sealer
from wagate.store.sql import schema
from wagate.store.sql.announcements import NOTIFY, announcements, channel
from wagate.store.sql.db import Database
from wagate.store.sql.prepared import InList, InsertMany, Tx, rows_in

__all__ = ["D", "E", "EventWriter", "PlainSealer", "S", "W", "default_environment", "event_parts", "open_event"]

E = schema.events
S = schema.sessions
W = schema.webhooks
D = schema.webhook_deliveries

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
_STAMPS_KEPT = 10_000  # sessions' stamps kept between commits (a stamp is a few hundred bytes)
_SESSIONS = InList(
    lambda _, ids: select(S.c.id, S.c.engine, S.c.config, S.c.me).where(rows_in([S.c.id], ids)),
    width=1,
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
    """The event of an events row, and its exact body (an event stored before the envelope became WAHA's is read in
    WAHA's: its body is the one it would have had, without what was not recorded then)."""
    stored = sealer.open(row.kek_id, row.sealed, "event", row.tenant_id, row.session_id, row.id).decode()
    body, envelope = upgraded(stored)
    stamp = None
    if envelope.get("engine") is not None:
        stamp = Stamp(envelope["me"], envelope["metadata"], envelope["engine"], envelope["environment"])
    event = Event(
        id=EventId(row.id),
        type=EventType(envelope["event"]),
        tenant_id=TenantId(row.tenant_id),
        session_id=SessionId(row.session_id),
        session=row.session_name,
        timestamp=row.at,
        payload=envelope["payload"],
        stamp=stamp,
    )
    return event, body


def default_environment() -> dict[str, Any]:
    """The environment of a process that was not told its own: no worker named."""
    return environment(__version__, "neonize", f"{sys.platform}/{platform.machine()}", None)


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
        self.environment = default_environment()
        self._stamps: dict[tuple[str | None, str | None, str | None], Stamp] = {}

    def write(self, conn: Connection, events: Sequence[Event]) -> Committed:
        if not events:
            return Committed([], [])
        tx = Tx(conn)
        events = self._stamped(tx, events)
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

    def _stamped(self, tx: Tx, events: Sequence[Event]) -> list[Event]:
        """``events`` with their sessions' account, metadata and engine as this transaction sees them."""
        stamps: dict[str, Stamp] = {}
        for session_id, engine, config, me in _SESSIONS.fetch(
            tx, [(i,) for i in sorted({e.session_id for e in events})]
        ):
            stamps[session_id] = self._stamp(engine, config, me)
        gone = self._stamp(None, None, None)  # a session deleted meanwhile
        return [e if e.stamp else e.stamped(stamps.get(e.session_id, gone)) for e in events]

    def _stamp(self, engine: str | None, config: str | None, me: str | None) -> Stamp:
        """The stamp of a session row's engine, config and account (as stored: JSON), made once while they stay."""
        key = (engine, config, me)
        found = self._stamps.get(key)
        if found is None or found.environment is not self.environment:
            metadata = json.loads(config).get("metadata") if config else None
            found = Stamp(
                me_info(json.loads(me) if me else None),
                metadata if isinstance(metadata, dict) else None,
                waha_engine(engine) if engine else self.environment["engine"],
                self.environment,
            )
            if len(self._stamps) >= _STAMPS_KEPT:
                self._stamps.clear()
            self._stamps[key] = found
        return found

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

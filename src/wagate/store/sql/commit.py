"""The unit of work that commits what sessions report: ``SessionCommit``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from wagate.clock import Clock
from wagate.domain.events import Committed
from wagate.domain.messages import Append
from wagate.domain.sessions import Session, StatusChange
from wagate.errors import LeaseLost
from wagate.store.sql.auth import SqlAuthRecordStore
from wagate.store.sql.inbound import InboundWriter
from wagate.store.sql.status import apply_changes
from wagate.store.sql.writer import EventWriter

__all__ = ["CommitOutcome", "SessionCommit"]


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """What one ``SessionCommit`` wrote: per status change, the session after it (None: not applied); per append,
    ``LeaseLost`` where its auth write was refused (nothing of it written); and the events with their deliveries."""

    applied: list[Session | None]
    refused: list[LeaseLost | None]
    committed: Committed


class SessionCommit:
    """Sessions' reports committed together, in one transaction: the unit of work behind ``SessionStore.commit``.

    A report is status changes (``StatusChange``) and appends (``Append``: events, received messages, and the
    auth-state changes that go with them, such as a ratchet those messages advanced). Inside the caller's
    transaction (``write``), in this order:

    1. the auth records, each append's write fenced by its lease (owner, epoch): an append whose write is refused
       is dropped whole (``LeaseLost`` in its place), and the others go on;
    2. the status changes, each fenced the same way, with their history rows and ``session.status`` events;
    3. the received messages not stored before, with their chats' counters and senders' names, and their
       ``message`` events;
    4. every event (those above and the appends' own) sealed, one outbox row per webhook that wants it, and on
       PostgreSQL their announcement to the other processes (delivered at the commit).

    Nothing of it is visible before the commit, and all of it is once the commit returns: only then may an engine
    acknowledge a message to WhatsApp. After the commit, ``notify`` hands the events to the bus and the deliveries
    to the webhook dispatcher.

    Synchronous: it runs whole on SQLite's writer thread (``Database.run_write``), and through ``run_sync`` on
    PostgreSQL, so that a runner stopped in the middle cannot cut it off.
    """

    def __init__(self, clock: Clock, auth: SqlAuthRecordStore, inbound: InboundWriter, events: EventWriter) -> None:
        self._clock = clock
        self._auth = auth
        self._inbound = inbound
        self._events = events

    def write(self, conn: Connection, changes: Sequence[StatusChange], appends: Sequence[Append]) -> CommitOutcome:
        writes = [a.auth for a in appends if a.auth is not None]
        outcomes = iter(self._auth.apply_many(conn, writes))
        refused = [next(outcomes) if a.auth is not None else None for a in appends]
        kept = [a for a, no in zip(appends, refused, strict=True) if no is None]
        applied, events = apply_changes(conn, changes, self._clock())
        events.extend(e for a in kept for e in a.events)
        inbound = [m for a in kept for m in a.inbound]
        if inbound:
            events.extend(m.event for m in self._inbound.write(conn, inbound))
        return CommitOutcome(applied, refused, self._events.write(conn, events))

    def notify(self, outcome: CommitOutcome) -> None:
        """After the commit: the events to their listeners (the bus, the webhook dispatcher)."""
        self._events.notify(outcome.committed)

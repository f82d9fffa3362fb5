"""Group commit of the outbound queue: messages queued at the same time share one transaction.

Every ``POST /api/send*`` answers only once its message is committed. With a transaction each, every request paid a
whole commit (on SQLite an fsync and a turn of the one writer, with a hop to the driver's thread per statement; on
PostgreSQL a WAL flush). The requests that arrive while one transaction commits go together in the next, and each
hears of its message only once that transaction has committed: nothing is answered earlier.

Inside a batch each message is checked as it was alone, in the order the requests came: its idempotency key (a
message queued under it before, by an earlier batch or earlier in this one, is the answer), its session's queue
bound (counting what this batch queued before it), then its row, which a conflict (the same id, or the same key from
a concurrent transaction) leaves out rather than aborting the batch. A batch that fails as a whole for another
reason than an unreachable database (a deadlock on PostgreSQL, say) is committed again one message at a time, so
that one request's trouble stays its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text

from wagate.clock import Clock
from wagate.domain.messages import MessageStatus, NewOutbound
from wagate.errors import QueueFull, StoreUnavailable
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.inbound import count_into_chats
from wagate.store.sql.prepared import InList, Prepared, Tx, dialect_insert, rows_in

__all__ = ["IS_QUEUED", "MM", "EnqueueCombiner", "M", "Outcome", "Queued", "S"]

log = logging.getLogger("wagate.store")

M = schema.messages
MM = schema.message_media
S = schema.sessions
# Spelled out, not bound: a partial index (ix_messages_queue) serves a query only when its condition is literally there.
IS_QUEUED = text("messages.status IN ('pending', 'sending')")

_COLUMNS = (
    "tenant_id",
    "session_id",
    "id",
    "chat_id",
    "sender",
    "from_me",
    "kind",
    "status",
    "timestamp",
    "created_at",
    "updated_at",
    "attempts",
    "idem_key",
    "idem_hash",
    "body",
)
_INSERT = Prepared(
    lambda dialect: (
        dialect_insert(dialect)(M)
        .values({c: bindparam(c) for c in _COLUMNS})
        .on_conflict_do_nothing()
        .returning(M.c.seq)
    ),
    _COLUMNS,
)
_INSERT_MEDIA = Prepared(
    lambda dialect: dialect_insert(dialect)(MM).values(
        session_id=bindparam("session_id"),
        message_id=bindparam("message_id"),
        tenant_id=bindparam("tenant_id"),
        data=bindparam("data"),
    ),
    ("session_id", "message_id", "tenant_id", "data"),
)
_WAITING = Prepared(
    lambda _: select(func.count()).select_from(M).where(M.c.session_id == bindparam("session_id"), IS_QUEUED),
    ("session_id",),
)
# PostgreSQL: the sessions' rows, locked in one order until the commit, so that one batch at a time queues for a
# session and its queue bound holds.
_LOCK_SESSIONS = InList(
    lambda _, ids: select(S.c.id).where(rows_in([S.c.id], ids)).order_by(S.c.id).with_for_update(), width=1
)


@dataclass(frozen=True, slots=True)
class Queued:
    """A message committed to the queue: its ``seq`` and the time it was queued at."""

    seq: int
    at: float


# What became of one message of a batch: queued; an earlier message's row (its idempotency key was used before);
# None when its row conflicted with one committed meanwhile (the caller finds out which); or the error to raise.
Outcome = Queued | Any | None | Exception
_Pending = list[tuple[NewOutbound, int, asyncio.Future[Outcome]]]


class EnqueueCombiner:
    """Commits queued messages in batches, one transaction at a time, in the order the requests came.

    The batches are committed by a task of the combiner's own: a request cancelled while its batch commits (its
    client went away) leaves the batch to finish for the others."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._pending: _Pending = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, new: NewOutbound, max_queued: int) -> Outcome:
        """Once committed (or refused): what became of ``new`` (see ``Outcome``); raises ``QueueFull``,
        ``StoreUnavailable`` or what else the store raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((new, max_queued, future))
        if self._flusher is None or self._flusher.done():
            # Started, not run yet: requests that come meanwhile join this batch before it is taken.
            self._flusher = loop.create_task(self._flush(), name="wagate-enqueue-commit")
            self._flusher.add_done_callback(_log_failure)
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._commit(batch)
            except BaseException:
                # This task itself is cancelled (the loop shutting down): nothing is known to be committed.
                failure = StoreUnavailable("queueing the message was interrupted")
                for _, _, future in [*batch, *self._pending]:
                    if not future.done():
                        future.set_exception(failure)
                self._pending = []
                raise

    async def _commit(self, batch: _Pending) -> None:
        items = [(new, max_queued) for new, max_queued, _ in batch]
        try:
            outcomes = await self._write(items)
        except StoreUnavailable as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                outcomes = [exc]
            else:
                log.warning("a batch of %d queued messages failed (%s): each goes again alone", len(batch), exc)
                outcomes = [await self._alone(new, max_queued) for new, max_queued in items]
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():  # its request was cancelled meanwhile
                future.set_result(outcome)

    async def _alone(self, new: NewOutbound, max_queued: int) -> Outcome:
        try:
            return (await self._write([(new, max_queued)]))[0]
        except Exception as exc:
            return exc

    async def _write(self, items: Sequence[tuple[NewOutbound, int]]) -> list[Outcome]:
        now = self._clock()
        return await self._db.run_write(lambda conn: _queue(conn, items, now))


def _queue(conn: Connection, items: Sequence[tuple[NewOutbound, int]], now: float) -> list[Outcome]:
    tx = Tx(conn)
    if tx.dialect.name == "postgresql":
        _LOCK_SESSIONS.fetch(tx, [(i,) for i in sorted({new.session_id for new, _ in items})])
    outcomes: list[Outcome] = []
    chats: list[tuple[str, str, str, str, float]] = []
    for new, max_queued in items:
        if new.idem_key is not None:
            replay = conn.execute(select(M).where(M.c.tenant_id == new.tenant_id, M.c.idem_key == new.idem_key)).first()
            if replay is not None:
                outcomes.append(replay)
                continue
        waiting = int(tx.fetch(_WAITING, (new.session_id,))[0][0])
        if waiting >= max_queued:
            outcomes.append(QueueFull(f"the session's outbound queue is full ({waiting} messages wait); retry later"))
            continue
        row = (
            new.tenant_id,
            new.session_id,
            new.id,
            new.chat_id,
            new.sender,
            1,
            new.kind.value,
            MessageStatus.PENDING.value,
            now,
            now,
            now,
            0,
            new.idem_key,
            new.idem_hash,
            new.body,
        )
        inserted = tx.fetch(_INSERT, row)
        if not inserted:
            outcomes.append(None)
            continue
        if new.media is not None:
            tx.run(_INSERT_MEDIA, (new.session_id, new.id, new.tenant_id, new.media))
        chats.append((new.tenant_id, new.session_id, new.chat_id, new.id, now))
        outcomes.append(Queued(int(inserted[0][0]), now))
    if chats:
        count_into_chats(tx, chats)
    return outcomes


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the outbound queue's committer failed", exc_info=task.exception())

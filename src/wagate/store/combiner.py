"""Group commit of auth writes: many sessions' credential writes share transactions.

A session's engine writes a key and waits for it before it acknowledges anything (a message, a receipt). With a
transaction each, every such write pays a whole commit (on PostgreSQL a few round trips and a WAL flush; on SQLite
an fsync and the one writer's turn). The writes that arrive while one transaction commits go together in the next,
and each writer hears of its own write only once that transaction has committed: nothing is acknowledged earlier.
"""

from __future__ import annotations

import asyncio
import logging

from wagate.domain.auth import AuthWrite
from wagate.errors import LeaseLost, StoreUnavailable
from wagate.store.contracts.auth import AuthRecordStore

__all__ = ["WriteCombiner"]

log = logging.getLogger("wagate.vault")

_Pending = list[tuple[AuthWrite, asyncio.Future[None]]]


class WriteCombiner:
    """Commits writes in batches, one transaction at a time, in the order they came.

    Each write stays fenced on its own: a session whose lease is lost gets ``LeaseLost`` for its write, the other
    writes of the batch commit. A batch that fails (the database unreachable, or its connection lost during the
    commit, when the outcome is unknown) fails each of its writes, which the writers handle as any failed write:
    writing the same records again is harmless.

    The batches are committed by a task of the combiner's own, not by one of the writers: a writer cancelled while
    its batch commits (a runner stopped) leaves the batch to finish for the other sessions in it, and never holds
    their writes back. One batch at a time keeps each session's writes in their order.
    """

    def __init__(self, store: AuthRecordStore) -> None:
        self._store = store
        self._pending: _Pending = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, write: AuthWrite) -> None:
        """Return once ``write`` is committed; raise ``LeaseLost`` if it was refused, or the store's error."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future))
        if self._flusher is None or self._flusher.done():
            # Started, not run yet: the writers woken by the last commit join this batch before it is taken.
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="wagate-auth-commit")
            self._flusher.add_done_callback(_log_failure)
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await self._commit(batch)

    async def _commit(self, batch: _Pending) -> None:
        try:
            results: list[LeaseLost | None] = await self._store.write_many([write for write, _ in batch])
        except Exception as exc:
            _settle(batch, exc)
            return
        except BaseException:
            # This task itself is cancelled (the loop shutting down): nothing is known to be committed.
            failure = StoreUnavailable("the auth write was interrupted")
            _settle(batch, failure)
            _settle(self._pending, failure)
            self._pending = []
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its writer was cancelled meanwhile
                continue
            if result is None:
                future.set_result(None)
            else:
                future.set_exception(result)


def _settle(batch: _Pending, failure: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the auth write committer failed", exc_info=task.exception())

"""Group commit of status changes: many runners' changes share one transaction.

A runner awaits ``record``; it returns once the change is committed (or with None when the change was fenced out
because the lease moved). While one batch commits, the next one gathers, so ten thousand sessions coming back after
a restart cost a few dozen transactions, not twenty thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from wagate.domain.sessions import Session
from wagate.store.base import SessionStore, StatusChange

log = logging.getLogger("wagate.supervisor")


class StatusRecorder:
    def __init__(self, sessions: SessionStore, *, max_batch: int = 2000) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._pending: list[tuple[StatusChange, asyncio.Future[Session | None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="status-recorder")

    async def stop(self) -> None:
        """Commit what is pending, then stop."""
        if self._task is None:
            return
        while self._pending:
            await self._flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def record(self, change: StatusChange) -> Session | None:
        future: asyncio.Future[Session | None] = asyncio.get_running_loop().create_future()
        self._pending.append((change, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        try:
            results = await self._sessions.set_status_many([change for change, _ in batch])
        except Exception as exc:  # handed to every waiting runner, which backs off and retries
            log.warning("could not record %d status change(s): %s", len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

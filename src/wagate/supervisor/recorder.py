"""Group commit of status changes and events: many runners' writes share one transaction.

A runner awaits ``record``; it returns once the change is committed (or with None when the change was fenced out
because the lease moved). ``append`` does the same for events that report no status change (messages, QR codes),
with the auth-state changes that go with them (a ratchet the messages advanced), fenced: ``LeaseLost`` when the
lease moved, and then nothing of that append is written. While one batch commits, the next one gathers, so ten
thousand sessions coming back after a restart cost a few dozen transactions, not twenty thousand, and thousands of
messages a second cost a few hundred commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from wagate.domain.auth import AuthWrite
from wagate.domain.events import Event
from wagate.domain.messages import Append, InboundMessage
from wagate.domain.sessions import Session, StatusChange
from wagate.store.contracts.sessions import SessionStore

__all__ = ["StatusRecorder"]

log = logging.getLogger("wagate.supervisor")


class StatusRecorder:
    def __init__(self, sessions: SessionStore, *, max_batch: int = 2000) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._pending: list[tuple[StatusChange | Append, asyncio.Future[Session | None]]] = []
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
        return await self._submit(change)

    async def append(
        self, events: Sequence[Event], inbound: Sequence[InboundMessage] = (), auth: AuthWrite | None = None
    ) -> None:
        """Commit events, received messages with theirs, and ``auth`` (fenced) together; returns once they are
        durable. Raises ``LeaseLost`` when ``auth`` was refused (nothing of it was written)."""
        if events or inbound or auth is not None:
            await self._submit(Append(events, inbound, auth))

    async def _submit(self, item: StatusChange | Append) -> Session | None:
        future: asyncio.Future[Session | None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
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
        changes = [item for item, _ in batch if isinstance(item, StatusChange)]
        appends = [item for item, _ in batch if isinstance(item, Append)]
        try:
            applied, refused = await self._sessions.commit(changes, appends)
        except Exception as exc:  # handed to every waiting runner, which backs off and retries
            log.warning("could not record %d status change(s) and %d append(s): %s", len(changes), len(appends), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        applied_in_order, refused_in_order = iter(applied), iter(refused)
        for item, future in batch:
            if isinstance(item, StatusChange):
                result = next(applied_in_order)
                if not future.done():
                    future.set_result(result)
                continue
            lost = next(refused_in_order)
            if future.done():
                continue
            if lost is None:
                future.set_result(None)
            else:
                future.set_exception(lost)

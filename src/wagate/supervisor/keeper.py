"""Keeping every session's runner going: a run that failed runs again, and nothing ends silently.

A run ends as it should (told to stop, hand over or shut down; a permanent outcome recorded; its lease lost), or it
fails. One that failed because the database refused a write (read-only, disk full, unreachable) runs again once the
database takes writes: one probe at a time looks, for every session waiting, and they all start again within a
couple of seconds of it. One that failed otherwise runs again after a backoff; after ``max_attempts`` such failures
in a row the session is ``FAILED`` (``engine_error``). A run that got the session WORKING, or lasted a while, before
failing starts the count over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from wagate.store.base import Store
from wagate.supervisor.backoff import Backoff
from wagate.supervisor.context import RunnerContext
from wagate.supervisor.runner import STABLE_AFTER, SessionRunner

__all__ = ["PROBE_FIRST", "PROBE_LONGEST", "STORE_PAUSE", "STORE_PAUSE_LONGEST", "RunnerKeeper", "StoreWatch"]

log = logging.getLogger("wagate.supervisor")

PROBE_FIRST = 0.25  # seconds before the second look at whether the database takes writes
PROBE_LONGEST = 2.0  # seconds at most between two looks: a recovery is noticed within this
STORE_PAUSE = 0.25  # seconds a runner that the database failed waits before it looks again, doubling...
STORE_PAUSE_LONGEST = 4.0  # ...up to this, while the database fails it again and again


class StoreWatch:
    """Whether the database takes writes again, found out by one probe loop for every session waiting for it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._back: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def writable(self) -> asyncio.Future[None]:
        """A future that is done once a write goes through (at once when the last one did), or cancelled when the
        watch closes."""
        if self._back is None or self._back.done():
            self._back = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._probe(self._back), name="store-watch")
        return self._back

    async def _probe(self, back: asyncio.Future[None]) -> None:
        pause = PROBE_FIRST
        while True:
            try:
                writable = await self._store.write_refusal() is None
            except Exception as exc:  # the watch must go on: whatever failed, it looks again
                log.warning("could not tell whether the database takes writes: %s", exc)
                writable = False
            if writable:
                log.info("the database takes writes again")
                if not back.done():
                    back.set_result(None)
                return
            await asyncio.sleep(pause)
            pause = min(PROBE_LONGEST, pause * 2)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._back is not None:
            self._back.cancel()  # whoever still waits is woken


class RunnerKeeper:
    """Runs a session's runner until it ends as it should, running it again each time it fails."""

    def __init__(self, ctx: RunnerContext, store: Store, stopping: Callable[[], bool]) -> None:
        self.settings = ctx.settings
        self.clock = ctx.clock
        self.watch = StoreWatch(store)
        self._backoff = Backoff(ctx.settings.backoff_base, ctx.settings.backoff_cap, ctx.rng)
        self._stats = ctx.stats
        self._stopping = stopping

    async def keep(self, runner: SessionRunner) -> None:
        failures = refusals = 0
        while True:
            started = self.clock()
            if await runner.run() or self._stopping():
                return
            if runner.worked or self.clock() - started >= STABLE_AFTER:
                failures = refusals = 0  # it had been working: not the same failure again
            if runner.fault is not None:
                refusals += 1
                await runner.pause(min(STORE_PAUSE_LONGEST, STORE_PAUSE * 2 ** (refusals - 1)))
                await runner.until(self.watch.writable())
            else:
                failures += 1
                if failures >= self.settings.max_attempts:
                    runner.log.error("the session failed %d times in a row; giving up", failures)
                    await runner.give_up(failures)
                    return
                await runner.pause(self._backoff.delay(failures))
            if self._stopping():
                return
            self._stats.runner_restarts += 1
            runner.log.info("running the session again after a failure")

"""Background tasks kept by their owner until they end, each failure logged: one way to start a task that nothing
awaits, for every part of wagate (asyncio keeps only a weak reference to a task, so one held by nobody can vanish
half-way, and its exception would be reported late or never)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["TaskSet"]

log = logging.getLogger("wagate.tasks")

T = TypeVar("T")


class TaskSet:
    """The tasks one owner started; none is forgotten, and one that fails says so in the log."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (failure := task.exception()) is not None:
            log.error("%s failed: %r", task.get_name(), failure, exc_info=failure)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    async def wait(self, within: float | None = None) -> set[asyncio.Task[Any]]:
        """Wait for the tasks running now to end, at most ``within`` seconds; those still running then."""
        tasks = list(self._tasks)
        if not tasks:
            return set()
        _, late = await asyncio.wait(tasks, timeout=within)
        return late

    async def cancel(self) -> None:
        """Cancel every task still running and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

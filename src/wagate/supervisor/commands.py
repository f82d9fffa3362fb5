"""What a session's runner is asked to do (by the supervisor, the health monitor or the API), and the waits that a
command cuts short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from enum import IntEnum

__all__ = ["Command", "Orders"]


class Command(IntEnum):
    """What the runner is asked to do; a stronger command wins over a weaker pending one."""

    KICK = 0  # the health monitor found the session stuck: reconnect through the normal backoff
    RESTART = 1
    HAND_OVER = 2  # this worker runs more than its share: end here, another worker takes the session
    RESET = 3
    LOGOUT = 4
    STOP = 5
    DELETE = 6
    SHUTDOWN = 7
    LEASE_LOST = 8


class Orders:
    """The command a runner is given (the strongest pending one), and the waits that a command cuts short.

    One future per wait rather than a task per thing waited for: ten thousand sessions wait at once.
    """

    def __init__(self) -> None:
        self._command: Command | None = None
        self._wakeup: asyncio.Future[None] | None = None  # resolved by a command, or by what ``wait_until`` awaits
        self.pausing = False  # in ``sleep``: backing off, not stuck

    def give(self, command: Command) -> None:
        if self._command is None or command > self._command:
            self._command = command
        self.wake()

    @property
    def pending(self) -> Command | None:
        """The command given and not taken yet."""
        return self._command

    def take(self) -> Command | None:
        command, self._command = self._command, None
        return command

    def wake(self, _: object = None) -> None:
        """Let the wait in progress look again (a closing event, a connect's end, a command)."""
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """Until ``done()`` or a command; ``wake`` makes it look again."""
        while not done() and self._command is None:
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    async def until(self, done: asyncio.Future[None]) -> None:
        """Wait for ``done``, or for a command."""
        done.add_done_callback(self.wake)
        try:
            await self.wait_until(done.done)
        finally:
            done.remove_done_callback(self.wake)

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless a command arrives; True when the sleep ran its course."""
        self.pausing = True
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self.wait_until(lambda: False)  # returns only when a command comes
                return False
            return True
        finally:
            self.pausing = False

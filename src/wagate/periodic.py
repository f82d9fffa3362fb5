"""Jobs run every few seconds by the supervisor and the webhook dispatcher, and how they end.

A job is never cut off half-way by its loop's cancellation: it runs to its end, then the cancellation takes
effect. An aiosqlite write transaction cut off half-way kept SQLite's write lock, and every later write of the
process failed with "database is locked" after 30 s (measured: in each of four runs of random cancellations of a
write loop, a write after one of them failed, the first after 4 to 28 cancellations), which is what a stop that
cancels its loops would do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wagate.errors import StoreUnavailable

__all__ = ["every", "once", "to_end"]

log = logging.getLogger("wagate")


async def every(pause: float | Callable[[], float], job: Callable[[], Awaitable[object]], *, what: str) -> None:
    """Run ``job`` after every ``pause`` seconds (a number, or a function that tells the next pause); a failure is
    logged and the loop goes on."""
    while True:
        seconds = pause() if callable(pause) else pause
        await asyncio.sleep(seconds)
        try:
            await to_end(job)
        except StoreUnavailable as exc:  # the database refuses for now: said once a round, without a traceback
            log.warning("%s failed: %s; retrying in %.0fs", what, exc, seconds)
        except Exception:  # the loop must survive anything; it tries again next round
            log.exception("%s failed; retrying in %.0fs", what, seconds)


async def once(delay: float, job: Callable[[], Awaitable[object]], *, what: str) -> None:
    await asyncio.sleep(delay)
    try:
        await to_end(job)
    except Exception:  # logged; a periodic run tries again
        log.exception("%s failed", what)


async def to_end(job: Callable[[], Awaitable[object]]) -> None:
    """Run ``job`` to its end even when the caller is cancelled meanwhile (the cancellation comes after it)."""
    running = asyncio.ensure_future(job())
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        if not running.cancelled() and (failure := running.exception()) is not None:
            log.error("%s failed while stopping: %s", getattr(job, "__name__", "job"), failure)
        raise

"""The simulator's state: its devices, their live connections and pending pairings, saved to its state file in the
background; the parts of :class:`~wagate.engines.sim.server.SimServer` build on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wagate.clock import Clock
from wagate.engines.sim.link import (
    CLOSE_LOGGED_OUT,
    CLOSE_NORMAL,
    Link,
    Registration,
    SimError,
    SimOptions,
    normal_phone,
    owns,
)
from wagate.engines.sim.protocol import frame
from wagate.engines.sim.state import Device, StateFile

__all__ = ["Flow", "SimCore"]

log = logging.getLogger("wagate.sim")


@dataclass(slots=True)
class Flow:
    """A steady message source (``trickle``): ``count`` messages spread evenly over ``over`` seconds."""

    phone: str
    sender: str
    text: str
    count: int
    over: float
    start: float  # loop time
    queued: int = 0


class SimCore:
    """The simulator's state and its lifecycle, independent of HTTP."""

    def __init__(self, options: SimOptions | None = None, state_path: Path | None = None, clock: Clock = time.time):
        self.options = options or SimOptions()
        self._state = StateFile(state_path)
        self._clock = clock
        self.devices: dict[str, Device] = {}
        self._by_id: dict[str, Device] = {}
        self._links: dict[str, Link] = {}
        self._qr: dict[str, Registration] = {}
        self._codes: dict[str, Registration] = {}
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None
        self._flows: list[Flow] = []  # steady message sources (``trickle``), all fed by one ticking task
        self._ticker: asyncio.Task[None] | None = None

    # lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.devices = self._state.load()
        self._by_id = {d.device_id: d for d in self.devices.values()}
        self._flusher = asyncio.create_task(self._flush_loop(), name="sim-flush")
        log.info("simulator ready with %d device(s)", len(self.devices))

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for link in list(self._links.values()):
            await link.close(CLOSE_NORMAL, "server stopping")
        self._state.save(self._snapshot())

    async def _flush_loop(self) -> None:
        pause = self.options.flush_interval
        while True:
            await asyncio.sleep(pause)
            if not self._dirty:
                continue
            self._dirty = False
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._state.save, self._snapshot())
            except OSError:
                log.exception("could not save the simulator state")
                self._dirty = True
            # Large states take long to save: space the saves so they never eat more than ~5% of the loop.
            pause = max(self.options.flush_interval, 20 * (time.perf_counter() - started))

    def _snapshot(self) -> dict[str, dict[str, Any]]:
        # Saved from a thread: hand it copies, not the objects the loop keeps changing.
        return {p: d.to_json() for p, d in self.devices.items()}

    def _changed(self) -> None:
        self._dirty = True

    async def _log_out(self, device: Device, reason: str) -> None:
        device.logged_out = True
        device.queue.clear()
        self._changed()
        link = self._links.get(device.device_id)
        if link is not None:
            await link.send(frame("logged_out", reason=reason))
            await link.close(CLOSE_LOGGED_OUT, "logged out")

    # inspection ------------------------------------------------------------------------------------------------

    def device(self, phone: str, owner: str | None = None) -> Device:
        """The device of ``phone``; with ``owner``, only one of that owner's (another's is as unknown)."""
        try:
            device = self.devices.get(normal_phone(phone))
        except ValueError as exc:
            raise SimError(422, str(exc)) from None
        if device is None or not owns(owner, device.owner):
            raise SimError(404, "no device is linked to this phone")
        return device

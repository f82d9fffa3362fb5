"""The clock as a dependency, so that time-based behaviour is testable without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "system_clock"]

Clock = Callable[[], float]
"""Returns the current time in seconds since the epoch."""

system_clock: Clock = time.time

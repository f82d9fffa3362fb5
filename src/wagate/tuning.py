"""Tuning of a long-running process of the gateway's (the server, the simulator's process)."""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLD", "tune_gc"]

GC_THRESHOLD = (70_000, 20, 20)


def tune_gc() -> None:
    """Make the cyclic garbage collector fit a long-running server holding thousands of sessions.

    By default a young-generation pass runs every 700 allocations and the older generations follow; with ten
    thousand sessions' objects alive each older pass walks all of them, and a mass restart spent about an eighth of
    its CPU there. What exists once the server is loaded (modules, the app) is frozen out of collection for good,
    and passes run a hundred times less often; garbage cycles are still collected, later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)

"""Random bytes for values that are made public (nonces, the random bits of ids), drawn from the OS a block at a time.

``os.urandom`` releases the GIL around its system call, and taking the GIL back waits until the thread that took it
lets go: with SQLite's writer thread busy beside the event loop, one call for the nonce of one received message cost
the loop up to the interpreter's switch interval (5 ms), far more than the encryption the nonce was for. The bytes
handed out here are the operating system's CSPRNG output, only fetched ahead; they are never used for keys or
secrets (those come from ``os.urandom`` or ``secrets`` directly), so holding them in memory before use gives nothing
away. A forked child starts with an empty block, so two processes never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["BLOCK", "public_random"]

BLOCK = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take(self, size: int) -> bytes:
        if size > BLOCK // 4:
            return os.urandom(size)
        with self._lock:
            at = self._at
            end = at + size
            if end > len(self._block):
                self._block = os.urandom(BLOCK)
                at, end = 0, size
            self._at = end
            return self._block[at:end]

    def reset(self) -> None:
        """In a forked child: forget the parent's block (and a lock another of its threads may have held)."""
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.reset)


def public_random(size: int) -> bytes:
    """``size`` bytes from the OS's CSPRNG, each handed out once in this process; for values that become public."""
    return _POOL.take(size)

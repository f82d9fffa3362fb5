"""Living with neonize's Go library in one process.

- Its Go side keeps clients in plain maps: a call that adds or removes one (the start of ``Neonize``, ``Stop``) must
  not overlap any other call, or Go aborts the whole process. :class:`FfiGate` lets ordinary calls run together and
  gives those two the library to themselves.
- The async client runs every Go call through the event loop's default executor, and the call that runs a session
  holds its thread for the session's whole life: :func:`size_executor` gives the loop one sized for the sessions.
- Every failed start of a session leaks a database connection in Go: :func:`reachable` checks that WhatsApp's
  servers can be reached at all before one is attempted, so that an offline gateway retries without leaking.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

__all__ = ["WHATSAPP_HOST", "WHATSAPP_PORT", "FfiGate", "connect_error_reason", "reachable", "size_executor"]

WHATSAPP_HOST = "web.whatsapp.com"
WHATSAPP_PORT = 443

# Words in whatsmeow's errors that mean the network, not WhatsApp, is the problem.
_NETWORK_ERRORS = (
    "no such host",
    "network is unreachable",
    "connection refused",
    "i/o timeout",
    "no route to host",
    "connection reset",
    "temporary failure in name resolution",
)


class FfiGate:
    """A readers-writer lock over the Go library: ``shared`` for calls that only use a client, ``exclusive`` for
    the ones that add or remove one. Waiting writers go first, so a stream of sends cannot starve a start."""

    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            async with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            self._writers_waiting += 1
            try:
                await self._changed.wait_for(lambda: not self._writer and self._readers == 0)
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            async with self._changed:
                self._writer = False
                self._changed.notify_all()


def size_executor(loop: asyncio.AbstractEventLoop, threads: int) -> ThreadPoolExecutor:
    """Give ``loop`` a default executor with ``threads`` workers (every live session holds one)."""
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wagate-neonize")
    loop.set_default_executor(executor)
    return executor


async def reachable(host: str, port: int, within: float) -> str | None:
    """None when a TCP connection to ``host:port`` opens; otherwise why not, as a status reason."""
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(host, port)
    except socket.gaierror as exc:
        return f"network unreachable: cannot resolve {host} ({exc.strerror or exc})"
    except TimeoutError:
        return f"network unreachable: no answer from {host}:{port} within {within:g}s"
    except OSError as exc:
        return f"network unreachable: cannot reach {host}:{port} ({exc.strerror or exc})"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def connect_error_reason(message: str) -> str:
    """A status reason for a failed start of whatsmeow's connection."""
    lowered = message.lower()
    if any(words in lowered for words in _NETWORK_ERRORS):
        return f"network unreachable: {message}"
    return f"whatsmeow could not connect: {message}"

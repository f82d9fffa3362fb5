"""The gateway's handle on one engine host process: starting it, serving its requests, noticing its end.

The host is ``python -m wagate.engines.host``, given one end of a socket pair (``--fd``) and nothing else of the
gateway: no other descriptor, no ``WAGATE_`` variable (the key-encryption keys, the database URL and the admin key
stay in the gateway), its engine's options in its first request. Its end is noticed at once: the socket reaches its
end of file when the process dies, however it dies, and its exit is awaited besides; every connection on it then
hears :meth:`HostClient.host_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wagate.engines.base import EngineUnavailable
from wagate.engines.host.channel import Channel, ChannelClosed
from wagate.errors import WagateError
from wagate.tasks import TaskSet

__all__ = [
    "PROTOCOL",
    "REAP_WAIT",
    "EngineHost",
    "HostClient",
    "HostSpec",
    "HostStartError",
    "child_environment",
    "describe_exit",
]

log = logging.getLogger("wagate.engine.host")

PROTOCOL = 1  # the requests' names and arguments; a host of another version of the package refuses to start
REAP_WAIT = 1.0  # seconds a host whose socket closed has to exit before it is killed


class HostStartError(WagateError):
    """An engine host could not be started (the process, or its engine in it)."""


class HostClient(Protocol):
    """What a host needs of a connection that runs on it."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    @property
    def session_name(self) -> str: ...

    async def handle(self, op: str, args: list[Any]) -> Any:
        """A request of the host for this connection: an event to commit, auth state to read or write."""

    def set_alive(self, alive: bool) -> None: ...

    def host_lost(self, why: str) -> None:
        """The host is gone: the connection ends, with a retryable ``Disconnected`` if it was connected."""

    @property
    def moving(self) -> bool: ...

    async def move(self) -> None:
        """Close gracefully and report a retryable end: the session reconnects on another host."""


@dataclass(frozen=True, slots=True)
class HostSpec:
    """How a pool starts its hosts."""

    engine: str
    options: dict[str, Any]  # the engine's own, as the registry's ``build_engine`` takes them
    log_level: str = "INFO"
    log_format: str = "text"
    env: dict[str, str] = field(default_factory=lambda: child_environment(os.environ))


def child_environment(environ: Any) -> dict[str, str]:
    """The gateway's environment without its settings: none of them is the host's to read."""
    return {k: v for k, v in environ.items() if not k.startswith("WAGATE_")}


def describe_exit(code: int | None) -> str:
    """How a process ended, to follow "the engine host ..."."""
    if code is None:
        return "is gone"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return "exited" if code == 0 else f"exited with code {code}"


class EngineHost:
    """One engine host process and the connections it runs (by id)."""

    def __init__(self, spec: HostSpec, number: int, on_gone: Callable[[EngineHost], None]) -> None:
        self.spec = spec
        self.name = f"{spec.engine} engine host {number}"
        self.connections: dict[int, HostClient] = {}
        self.opened = 0  # connections opened on it so far
        self.started_at = time.monotonic()
        self.ready_at: float | None = None  # when its engine was ready (monotonic)
        self.retiring_since: float | None = None  # takes no new sessions since (monotonic)
        self.retire_reason: str | None = None
        self.stopping = False  # told to stop: its end is no crash
        self.exit: str | None = None  # how it ended
        self.process: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None
        self._on_gone = on_gone
        self._gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks = TaskSet()
        self._buried = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def live(self) -> bool:
        return self.exit is None and not self._buried and self.channel is not None and not self.channel.closed

    @property
    def accepting(self) -> bool:
        return self.live and self.retiring_since is None and not self.stopping

    # start and stop --------------------------------------------------------------------------------------------

    async def start(self, *, within: float) -> None:
        """Start the process and its engine; raises ``HostStartError`` (the process is gone then)."""
        try:
            await self._spawn()
        except OSError as exc:
            self.kill()
            self._buried = True
            self.exit = "did not start"
            self._gone.set_result(self.exit)
            raise HostStartError(f"the {self.spec.engine} engine host cannot start: {exc}") from None
        self._tasks.spawn(self._watch(), f"{self.name} exit")
        assert self.channel is not None
        try:
            async with asyncio.timeout(within):
                await self.channel.request("init", 0, self.spec.engine, self.spec.options)
        except TimeoutError:
            self.kill()
            raise HostStartError(f"the {self.spec.engine} engine host did not start within {within:g}s") from None
        except ChannelClosed:
            raise HostStartError(f"the {self.spec.engine} engine host {await self.gone()} as it started") from None
        except WagateError as exc:
            self.kill()
            raise HostStartError(f"the {self.spec.engine} engine cannot run in a host: {exc}") from None
        except BaseException:  # cancelled (the gateway stops): no half-started host is left behind
            self.kill()
            raise
        self.ready_at = time.monotonic()
        log.info("%s started (pid %s) in %.2fs", self.name, self.pid, self.ready_at - self.started_at)

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "wagate.engines.host",
                *("--fd", str(theirs.fileno()), "--protocol", str(PROTOCOL)),
                *("--log-level", self.spec.log_level, "--log-format", self.spec.log_format),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                env=self.spec.env,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()  # the host's own now: its end of file comes when the host dies
        channel = Channel(self.name, self._serve, self._noted, self._closed)
        try:
            await asyncio.get_running_loop().create_unix_connection(lambda: channel, sock=ours)
        except OSError:
            ours.close()
            raise
        self.channel = channel

    async def stop(self, grace: float) -> None:
        """Let the host close its engine and exit (connections should be closed by now); killed after ``grace``."""
        self.stopping = True
        if self.channel is not None and not self.channel.closed:
            with contextlib.suppress(WagateError, TimeoutError):
                await asyncio.wait_for(self.channel.request("stop", 0), grace)
            self.channel.close()  # the host exits at its end of file
        if self.process is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._gone), grace)
            except TimeoutError:
                self.kill()
        await self.gone()
        await self._tasks.cancel()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def gone(self) -> str:
        """Wait for the host's end; how it ended."""
        return await asyncio.shield(self._gone)

    # the host's requests ---------------------------------------------------------------------------------------

    async def _serve(self, op: str, conn: int, args: list[Any]) -> Any:
        client = self.connections.get(conn)
        if client is None:
            raise EngineUnavailable("that connection is closed")
        return await client.handle(op, args)

    def _noted(self, op: str, conn: int, args: list[Any]) -> None:
        if op == "alive" and (client := self.connections.get(conn)) is not None:
            client.set_alive(bool(args[0]))

    async def request(self, op: str, conn: int, *args: Any) -> Any:
        """Ask the host; raises ``ChannelClosed`` when it is gone before it answered."""
        if self.channel is None:
            raise ChannelClosed(f"{self.name} is gone")
        return await self.channel.request(op, conn, *args)

    def ping(self) -> None:
        if self.channel is not None:
            self.channel.notify("ping", 0)

    async def stats(self) -> dict[str, Any]:
        """What the host reports of itself: its connections and its engine's counters."""
        if self.channel is None:
            raise ChannelClosed(f"{self.name} is gone")
        stats: dict[str, Any] = await self.channel.request("stats", 0)
        return stats

    def rss_kib(self) -> int | None:
        if self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            return None
        return None

    # its end ---------------------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        assert self.process is not None
        await self.process.wait()
        self._closed(None)

    def _closed(self, _: Exception | None) -> None:
        """The socket closed or the process exited (each comes, in either order): bury the host once."""
        if not self._buried:
            self._buried = True
            self._tasks.spawn(self._bury(), f"{self.name} end")

    async def _bury(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), REAP_WAIT)
            except TimeoutError:  # its socket closed and it lives on: it is of no use any more
                self.kill()
                await process.wait()
        if self.channel is not None:
            self.channel.close()
        self.exit = describe_exit(process.returncode if process is not None else None)
        if self.stopping:
            log.info("%s (pid %s) stopped", self.name, self.pid)
        else:
            log.warning(
                "%s (pid %s) %s; its %d session(s) reconnect on another", self.name, self.pid, self.exit, len(self)
            )
        clients, self.connections = list(self.connections.values()), {}
        for client in clients:
            client.host_lost(f"the engine host {self.exit}")
        self._gone.set_result(self.exit)
        self._on_gone(self)

    def __len__(self) -> int:
        return len(self.connections)

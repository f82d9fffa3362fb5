"""A pool of engine hosts for one engine: where each new connection runs, and when a host is replaced.

A connection goes to the live host with the fewest sessions that has room (``sessions`` per host); when none has,
hosts are started for the connections that wait (as many as they fill, up to :data:`PARALLEL_STARTS` at once: after
a restart, thousands of sessions may wait), and each waits for the first start to end.

Recycling costs no session a reconnect it would not have had otherwise, until a host has been past its limit for a
while: a host that has opened ``recycle_starts`` connections (each failed neonize start leaks memory in it), uses
more than ``recycle_rss_kib`` of memory or is older than ``recycle_age`` takes no new session, and exits when its
last session ends; its sessions' own reconnects (a dropped network, a restart) land on other hosts. Only when it
still has sessions ``drain_after`` seconds later are they moved, one a second: each is closed gracefully (its state
kept) and reconnects through its backoff on another host.

Every second the pool looks at its hosts: their memory and age, a drain's next step, and whether each still
answers; one silent for :data:`HUNG_AFTER` seconds is killed, and its sessions reconnect elsewhere like those of a
host that crashed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

from wagate.engines.host.process import EngineHost, HostClient, HostSpec, HostStartError
from wagate.periodic import every
from wagate.tasks import TaskSet

__all__ = [
    "CHECK_INTERVAL",
    "HUNG_AFTER",
    "PARALLEL_STARTS",
    "PING_AFTER",
    "STOP_GRACE",
    "HostPolicy",
    "HostPool",
    "retire_reason",
]

log = logging.getLogger("wagate.engine.host")

CHECK_INTERVAL = 1.0
PING_AFTER = 5.0  # seconds of silence after which a host is asked whether it is alive
HUNG_AFTER = 30.0  # seconds of silence after which a host is taken as hung and killed
STOP_GRACE = 5.0
PARALLEL_STARTS = 4  # hosts started at once when many sessions start together (a restart)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    sessions: int = 50  # per host
    recycle_starts: int = 0  # connections opened, then no more (0: no limit)
    recycle_rss_kib: int = 0  # resident memory, then no more (0: no limit)
    recycle_age: float = 0.0  # seconds, then no more (0: no limit)
    drain_after: float = 0.0  # seconds a retired host keeps its sessions before they are moved (0: until they end)
    start_timeout: float = 30.0


def retire_reason(policy: HostPolicy, *, opened: int, rss_kib: int | None, age: float) -> str | None:
    """Why a host with these figures takes no new session, or None while it may."""
    if policy.recycle_starts and opened >= policy.recycle_starts:
        return f"{opened} sessions opened"
    if policy.recycle_rss_kib and rss_kib is not None and rss_kib >= policy.recycle_rss_kib:
        return f"{rss_kib // 1024} MiB resident"
    if policy.recycle_age and age >= policy.recycle_age:
        return f"{age:.0f}s old"
    return None


class HostPool:
    def __init__(self, spec: HostSpec, policy: HostPolicy) -> None:
        self.spec = spec
        self.policy = policy
        self.hosts: list[EngineHost] = []
        self._numbers = itertools.count(1)
        self._ids = itertools.count(1)
        self._starting: set[asyncio.Task[EngineHost]] = set()  # hosts being started
        self._waiting = 0  # connections waiting for a host with room
        self.tasks = TaskSet()
        self._checking: asyncio.Task[None] | None = None
        self._closed = False
        self.started = 0  # hosts started
        self.crashed = 0  # ... that ended without being told to
        self.recycled = 0  # ... that were retired and stopped

    def next_id(self) -> int:
        return next(self._ids)

    # placing connections ---------------------------------------------------------------------------------------

    async def acquire(self, client: HostClient, conn: int) -> EngineHost:
        """The host ``client`` runs on from now (registered there as ``conn``); starts hosts when none has room.
        Raises ``HostStartError``."""
        self._waiting += 1
        try:
            while True:
                if self._closed:
                    raise HostStartError(f"the {self.spec.engine} engine hosts are stopping")
                candidates = [h for h in self.hosts if h.accepting and len(h) < self.policy.sessions]
                if candidates:
                    host = min(candidates, key=len)
                    host.connections[conn] = client
                    host.opened += 1
                    if (why := retire_reason(self.policy, opened=host.opened, rss_kib=None, age=0.0)) is not None:
                        self._retire(host, why)
                    return host
                starting = len(self._starting)
                if starting < PARALLEL_STARTS and starting * self.policy.sessions < self._waiting:
                    task = self.tasks.spawn(self._start(), f"{self.spec.engine} engine host start")
                    self._starting.add(task)
                done, _ = await asyncio.wait(set(self._starting), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and (failure := task.exception()) is not None:
                        raise failure
        finally:
            self._waiting -= 1

    async def _start(self) -> EngineHost:
        task = asyncio.current_task()
        try:
            host = EngineHost(self.spec, next(self._numbers), self._gone)
            await host.start(within=self.policy.start_timeout)
            self.started += 1
            self.hosts.append(host)
            if self._checking is None:
                self._checking = self.tasks.spawn(
                    every(CHECK_INTERVAL, self.check, what=f"{self.spec.engine} engine host check"),
                    f"{self.spec.engine} engine host check",
                )
            return host
        finally:
            if task is not None:
                self._starting.discard(task)

    def released(self, host: EngineHost, conn: int) -> None:
        """A connection on ``host`` ended; a retired host with none left stops."""
        host.connections.pop(conn, None)
        if host.retiring_since is not None and not host.connections and not host.stopping:
            self._stop(host)

    def _gone(self, host: EngineHost) -> None:
        if host in self.hosts:
            self.hosts.remove(host)
        if not host.stopping:
            self.crashed += 1

    # recycling -------------------------------------------------------------------------------------------------

    def _retire(self, host: EngineHost, why: str) -> None:
        if host.retiring_since is not None:
            return
        host.retiring_since = time.monotonic()
        host.retire_reason = why
        log.info("%s takes no new session (%s); it stops when its %d session(s) have ended", host.name, why, len(host))
        if not host.connections:
            self._stop(host)

    def _stop(self, host: EngineHost) -> None:
        host.stopping = True
        self.recycled += 1
        self.tasks.spawn(host.stop(STOP_GRACE), f"{host.name} stop")

    async def check(self) -> None:
        """Retire hosts past their limits, move a session off a retired host that drains, kill a hung host."""
        now = time.monotonic()
        policy = self.policy
        for host in list(self.hosts):
            if not host.live or host.stopping:
                continue
            if host.retiring_since is None:
                why = retire_reason(policy, opened=host.opened, rss_kib=host.rss_kib(), age=now - host.started_at)
                if why is not None:
                    self._retire(host, why)
            retired = host.retiring_since
            if retired is not None and policy.drain_after and now - retired >= policy.drain_after:
                self._move_one(host)
            assert host.channel is not None
            silent = time.monotonic() - host.channel.heard_at
            if silent >= HUNG_AFTER:
                log.error("%s (pid %s) has not answered for %.0fs; killing it", host.name, host.pid, silent)
                host.kill()
            elif silent >= PING_AFTER:
                host.ping()

    def _move_one(self, host: EngineHost) -> None:
        for conn, client in list(host.connections.items()):
            if not client.moving:
                self.tasks.spawn(client.move(), f"{host.name} move {conn}")
                return

    # the whole pool --------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every host (their sessions should be closed by now)."""
        self._closed = True
        if self._checking is not None:
            self._checking.cancel()
        for host in list(self.hosts):
            if not host.stopping:
                host.stopping = True
                self.tasks.spawn(host.stop(STOP_GRACE), f"{host.name} stop")
        await asyncio.gather(*(host.gone() for host in list(self.hosts)))
        await self.tasks.cancel()
        self.hosts.clear()

    def describe(self) -> list[dict[str, Any]]:
        """Each host as the status route shows it."""
        now = time.monotonic()
        return [
            {
                "engine": self.spec.engine,
                "pid": host.pid,
                "state": "stopping" if host.stopping else "retiring" if host.retiring_since is not None else "running",
                "retire_reason": host.retire_reason,
                "sessions": sorted(
                    (
                        {"tenant": c.tenant_id, "id": c.session_id, "name": c.session_name}
                        for c in host.connections.values()
                    ),
                    key=lambda s: s["id"],
                ),
                "opened": host.opened,
                "age_s": round(now - host.started_at, 1),
                "rss_bytes": (rss * 1024) if (rss := host.rss_kib()) is not None else None,
            }
            for host in self.hosts
        ]

"""The node: one process's running parts, built from its gateway and started and stopped in one declared order.

A node owns the gateway's context (it does not open or close the gateway: its caller does), the metrics wiring,
the simulator of demo mode and, when it runs sessions, the webhook dispatcher, the peer channel, the supervisor and
the retention of stored messages and events (``wagate.runtime.retention``).
Its parts start in the order they are declared and stop in the reverse order; a part that fails to start stops
with the parts started before it, and the failure goes on to the caller. An HTTP app (``wagate.api.app``) serves
a node; its lifespan starts and stops it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from wagate.api.app import DEMO_SIM_PATH
from wagate.api.demo import refuse_in_production
from wagate.engines.registry import EngineRegistry
from wagate.engines.sim.server import SimServer
from wagate.errors import StoreError
from wagate.fanout.peers import PeerEvents
from wagate.gateway import Gateway
from wagate.ids import WebhookId
from wagate.periodic import every
from wagate.runtime.metrics import Metrics
from wagate.runtime.retention import Retention
from wagate.supervisor.supervisor import Supervisor
from wagate.webhooks.dispatcher import WebhookDispatcher

__all__ = ["Node", "Part"]

log = logging.getLogger("wagate.node")


@dataclass(frozen=True, slots=True)
class Part:
    """One running part: how it starts, and how it stops (also after a start cut short by a failure)."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


class Node:
    """Everything one process runs over its gateway. ``supervise`` runs the sessions and their webhook deliveries
    here; without it the node records what tenants want in the store and hears the workers' events for its
    WebSocket clients (an API-only process, beside ``wagate worker`` processes)."""

    def __init__(self, gateway: Gateway, *, supervise: bool = True) -> None:
        settings = gateway.settings
        refuse_in_production(settings)
        self.gateway = gateway
        self.metrics = Metrics()
        self.sim = SimServer(state_path=settings.data_dir / "sim-state.json") if settings.demo else None
        self._supervisor: Supervisor | None = None
        self.dispatcher: WebhookDispatcher | None = None
        self.peers: PeerEvents | None = None
        self._hello: asyncio.Task[None] | None = None
        self.retention: Retention | None = None
        if supervise:
            self.retention = Retention(gateway.store, settings, gateway.clock)
            sim_url = f"ws://127.0.0.1:{settings.port}{DEMO_SIM_PATH}/ws" if self.sim is not None else None
            supervisor = Supervisor(gateway, EngineRegistry(settings, sim_url=sim_url))
            dispatcher = WebhookDispatcher(
                gateway.store, settings, gateway.clock, owner=supervisor.owner, takeover=supervisor.takeover
            )
            dispatcher.observe_lag = self.metrics.webhook_lag.observe
            self.peers = PeerEvents(
                gateway.store,
                gateway.bus,
                supervisor.owner,
                on_peer=supervisor.peer_heard,
                on_webhook=dispatcher.forget_endpoint,
            )
            self._supervisor, self.dispatcher = supervisor, dispatcher
            self.process = supervisor.owner
        else:
            # Named as a supervisor names its leases' owner, so that a request forwarded here is never sent on.
            self.process = f"{settings.worker_id}#api-{secrets.token_hex(4)}"
            # The workers' events reach this process's WebSocket clients too: it listens, and says hello as often
            # as the workers reconcile, for it holds no lease by which they would know it is there.
            self.peers = PeerEvents(gateway.store, gateway.bus, self.process)
        self.metrics.gateway.supervisor = self._supervisor
        self.metrics.gateway.dispatcher = self.dispatcher
        self.metrics.gateway.peers = self.peers
        self.parts: tuple[Part, ...] = tuple(self._declare())
        self._running: list[Part] = []

    def _declare(self) -> list[Part]:
        """The parts in the order they start."""
        parts = [Part("store metrics", self._observe_store, self._unobserve_store)]
        if self.sim is not None:
            parts.append(Part("simulator", self.sim.start, self.sim.stop))
        if self.dispatcher is not None:
            # Before the supervisor: the deliveries of the sessions' first events are claimed for it.
            parts.append(Part("webhook dispatcher", self.dispatcher.start, self.dispatcher.stop))
        if self.peers is not None:
            parts.append(Part("peer channel", self._listen, self.peers.stop))
        if self._supervisor is not None:
            parts.append(Part("supervisor", self._supervisor.start, self._supervisor.stop))
        if self.retention is not None:
            parts.append(Part("retention", self.retention.start, self.retention.stop))
        elif self.peers is not None:
            parts.append(Part("peer hello", self._start_hello, self._stop_hello))
        return parts

    @property
    def supervisor(self) -> Supervisor | None:
        """The supervisor while it runs: the API acts on no supervisor that has not started or has stopped."""
        return self._supervisor if any(part.name == "supervisor" for part in self._running) else None

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    @property
    def started(self) -> float:
        return self.metrics.started

    @property
    def running(self) -> tuple[str, ...]:
        """The names of the parts started and not yet stopped, in their order."""
        return tuple(part.name for part in self._running)

    async def start(self) -> None:
        """Start every part in order; if one fails, stop it and those before it, and raise its failure."""
        for part in self.parts:
            self._running.append(part)  # stopped even if its start is cut short: it may hold what it began
            try:
                await part.start()
            except BaseException:
                log.error("%s failed to start; stopping what started", part.name)
                await self.stop()
                raise
        log.info("started: %s", ", ".join(self.running))

    async def stop(self) -> None:
        """Stop the started parts in reverse order; one that fails to stop is logged and the others still stop."""
        while self._running:
            part = self._running.pop()
            try:
                await part.stop()
            except Exception:  # the next parts must stop all the same
                log.exception("%s failed to stop cleanly", part.name)
        log.info("stopped")

    async def endpoint_changed(self, webhook_id: WebhookId) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.endpoint_changed(webhook_id)
            return
        try:  # no dispatcher here: the workers' read it again before their next delivery to it
            await self.gateway.store.peers.tell_peers(self.process, [webhook_id])
        except StoreError as exc:  # the change is committed; the workers' copies expire on their own
            log.warning("could not tell the workers that webhook %s changed: %s", webhook_id, exc)

    async def _observe_store(self) -> None:
        self.gateway.store.set_observer(self.metrics.observe_store)

    async def _unobserve_store(self) -> None:
        self.gateway.store.set_observer(None)

    async def _listen(self) -> None:
        if self.peers is not None:
            self.peers.start()

    async def _start_hello(self) -> None:
        pause = self.gateway.settings.reconcile_interval
        self._hello = asyncio.create_task(every(pause, self._say_hello, what="peer hello"), name="peer-hello")

    async def _stop_hello(self) -> None:
        if self._hello is not None:
            self._hello.cancel()
            await asyncio.gather(self._hello, return_exceptions=True)
            self._hello = None

    async def _say_hello(self) -> None:
        await self.gateway.store.peers.tell_peers(self.process)

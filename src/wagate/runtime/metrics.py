"""Prometheus metrics: one registry per node, read at scrape time from the parts that count things.

Counters kept by the sessions (``SessionStats``) and the webhook dispatcher are exported as they are (they start at
zero with the process, as Prometheus counters do); store latencies and webhook lags are histograms observed as they
end. The HTTP app adds its own (``wagate.api.metrics``) to the same registry.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wagate.api.metrics import LATENCY_BUCKETS
from wagate.domain.sessions import Status
from wagate.supervisor.stats import SessionStats

if TYPE_CHECKING:
    from wagate.fanout.peers import PeerEvents
    from wagate.supervisor.supervisor import Supervisor
    from wagate.webhooks.dispatcher import WebhookDispatcher

__all__ = ["LAG_BUCKETS", "GatewayCollector", "Metrics"]

# A webhook delivery's lag: from a receiver that keeps up to one a day of retries behind.
LAG_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400,
)  # fmt: skip


class GatewayCollector(Collector):
    """What the supervisor and the dispatcher of this process have counted."""

    def __init__(self) -> None:
        self.supervisor: Supervisor | None = None
        self.dispatcher: WebhookDispatcher | None = None
        self.peers: PeerEvents | None = None

    def collect(self) -> Iterator[Metric]:
        supervisor = self.supervisor
        sessions = GaugeMetricFamily("wagate_sessions", "sessions this worker runs, by status", labels=["status"])
        by_status: Counter[str] = Counter()
        if supervisor is not None:
            by_status.update(runner.observed()[0].value for runner in list(supervisor.runners.values()))
        for status in Status:
            sessions.add_metric([status.value], by_status[status.value])
        yield sessions
        stats = supervisor.stats if supervisor is not None else SessionStats()
        yield from _session_counters(stats)
        deliveries = CounterMetricFamily(
            "wagate_webhook_deliveries", "webhook delivery attempts by outcome", labels=["outcome"]
        )
        outcomes = self.dispatcher.outcomes if self.dispatcher is not None else Counter()
        for outcome in ("delivered", "failed", "refused", "gone", "dead"):
            deliveries.add_metric([outcome], outcomes[outcome])
        yield deliveries
        workers = len(supervisor.workers) if supervisor is not None else 0
        yield GaugeMetricFamily("wagate_workers_live", "live workers sharing the sessions, this one too", value=workers)
        share = supervisor.share if supervisor is not None else 0
        yield GaugeMetricFamily("wagate_session_share", "sessions to run per live worker (rounded up)", value=share)
        backlog = self.dispatcher.backlog if self.dispatcher is not None else 0
        yield GaugeMetricFamily("wagate_webhook_backlog", "webhook deliveries held by this worker", value=backlog)
        yield from self._engine_hosts()
        peers = self.peers
        yield GaugeMetricFamily(
            "wagate_peer_listening",
            "1 while this worker hears the other workers' events (PostgreSQL), else 0",
            value=int(peers is not None and peers.listening),
        )
        yield CounterMetricFamily(
            "wagate_peer_events",
            "other workers' events handed to this worker's WebSocket clients",
            value=peers.relayed if peers is not None else 0,
        )

    def _engine_hosts(self) -> Iterator[Metric]:
        pools = self.supervisor.engines.pools() if self.supervisor is not None else {}
        hosts = GaugeMetricFamily("wagate_engine_hosts", "engine host processes running", labels=["engine"])
        crashes = CounterMetricFamily(
            "wagate_engine_host_crashes", "engine hosts that ended without being told to", labels=["engine"]
        )
        recycles = CounterMetricFamily(
            "wagate_engine_host_recycles", "engine hosts retired past a limit and stopped", labels=["engine"]
        )
        for engine, pool in sorted(pools.items()):
            hosts.add_metric([engine], len(pool.hosts))
            crashes.add_metric([engine], pool.crashed)
            recycles.add_metric([engine], pool.recycled)
        yield from (hosts, crashes, recycles)


def _session_counters(stats: SessionStats) -> Iterator[Metric]:
    counters = (
        ("wagate_reconnect_attempts", "failed connection attempts that were retried", stats.reconnects),
        ("wagate_breaker_opens", "times a session's circuit breaker opened", stats.breaker_opens),
        ("wagate_decrypt_failures", "messages that failed to decrypt (Bad MAC)", stats.decrypt_failures),
        (
            "wagate_contact_resets",
            "contacts' encryption sessions reset after repeated failures",
            stats.contact_resets,
        ),
        ("wagate_quarantines", "sessions quarantined for corruption", stats.quarantines),
        (
            "wagate_damaged_records",
            "stored auth state found damaged at rest (a contact's or the device's)",
            stats.damaged_records,
        ),
        ("wagate_backups", "sealed backups of sessions' auth state taken", stats.backups_taken),
        (
            "wagate_stuck_restarts",
            "reconnects ordered by the health monitor for stuck sessions",
            stats.stuck_restarts,
        ),
        ("wagate_idle_stops", "sessions stopped by the health monitor for inactivity", stats.idle_stops),
        (
            "wagate_session_handovers",
            "sessions handed over to other workers to spread the load",
            stats.handovers,
        ),
        ("wagate_runner_restarts", "session runs started again after they failed", stats.runner_restarts),
    )
    for name, documentation, value in counters:
        yield CounterMetricFamily(name, documentation, value=value)


class Metrics:
    """The node's registry: what its parts counted, its store's latencies, its webhooks' lags."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.gateway = GatewayCollector()
        self.registry.register(self.gateway)
        self.store = Histogram(
            "wagate_store_operation_duration_seconds",
            "store transaction latency (read or write)",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhook_lag = Histogram(
            "wagate_webhook_delivery_lag_seconds",
            "from an event's commit to its successful webhook delivery, retries included",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.started = time.time()

    def observe_store(self, operation: str, seconds: float) -> None:
        self.store.labels(operation).observe(seconds)

"""``/metrics``' session counters, as Prometheus reads them, come from the typed ``SessionStats`` by their names."""

from __future__ import annotations

import dataclasses

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wagate.engines.registry import EngineRegistry
from wagate.gateway import Gateway
from wagate.runtime.metrics import Metrics
from wagate.supervisor.stats import SessionStats
from wagate.supervisor.supervisor import Supervisor

EXPORTED = {
    "reconnects": "wagate_reconnect_attempts_total",
    "breaker_opens": "wagate_breaker_opens_total",
    "decrypt_failures": "wagate_decrypt_failures_total",
    "contact_resets": "wagate_contact_resets_total",
    "quarantines": "wagate_quarantines_total",
    "damaged_records": "wagate_damaged_records_total",
    "backups_taken": "wagate_backups_total",
    "stuck_restarts": "wagate_stuck_restarts_total",
    "idle_stops": "wagate_idle_stops_total",
    "handovers": "wagate_session_handovers_total",
    "runner_restarts": "wagate_runner_restarts_total",
}


def scrape(metrics: Metrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


async def test_every_session_counter_is_exported_under_its_name(gateway: Gateway) -> None:
    assert {f.name for f in dataclasses.fields(SessionStats)} == set(EXPORTED)
    metrics = Metrics()
    assert {scrape(metrics)[name] for name in EXPORTED.values()} == {0.0}  # no supervisor yet: zeros

    stats = SessionStats()
    supervisor = Supervisor(gateway, EngineRegistry(gateway.settings), stats=stats)
    metrics.gateway.supervisor = supervisor
    for value, field in enumerate(EXPORTED, start=1):
        setattr(stats, field, value)
    stats.count_reconnect(breaker_opened=True)
    scraped = scrape(metrics)
    expected = {name: float(n) for n, name in enumerate(EXPORTED.values(), start=1)}
    expected["wagate_reconnect_attempts_total"] += 1
    expected["wagate_breaker_opens_total"] += 1
    assert {name: scraped[name] for name in EXPORTED.values()} == expected

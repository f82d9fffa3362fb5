"""The node over SQLite and PostgreSQL: its parts start in their declared order and stop in reverse, and a part that
fails to start leaves nothing of the node running."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from wagate.gateway import Gateway
from wagate.runtime.node import Node, Part

EVERY_PART = ("store metrics", "webhook dispatcher", "peer channel", "supervisor", "retention")
API_ONLY = ("store metrics", "peer channel", "peer hello")


def store_operations(node: Node) -> float:
    """How many store operations the node's metrics have seen."""
    total = 0.0
    for family in node.registry.collect():
        if family.name == "wagate_store_operation_duration_seconds":
            total += sum(s.value for s in family.samples if s.name.endswith("_count"))
    return total


async def test_parts_start_in_their_order_and_stop_in_reverse(gateway: Gateway) -> None:
    node = Node(gateway)
    assert tuple(part.name for part in node.parts) == EVERY_PART
    assert not Node(gateway, supervise=False).running
    assert tuple(part.name for part in Node(gateway, supervise=False).parts) == API_ONLY

    assert node.supervisor is None  # not before it runs: the API acts on none that has not started
    await node.start()
    try:
        assert node.running == EVERY_PART
        assert node.supervisor is not None
        assert node.peers is not None
        await gateway.store.tenants.list_all()
        assert store_operations(node) > 0  # the store reports to this node's metrics
        assert b"wagate_workers_live 1.0" in generate_latest(node.registry)  # the supervisor's view, exported
    finally:
        await node.stop()
    assert not node.running
    assert node.supervisor is None
    seen = store_operations(node)
    await gateway.store.tenants.list_all()
    assert store_operations(node) == seen  # a stopped node's metrics hear nothing more


async def test_an_api_only_node_runs_no_session_and_hears_the_workers(gateway: Gateway) -> None:
    node = Node(gateway, supervise=False)
    await node.start()
    try:
        assert node.running == API_ONLY
        assert (node.supervisor, node.dispatcher) == (None, None)
        assert node.process.startswith(f"{gateway.settings.worker_id}#api-")
        assert b'wagate_sessions{status="WORKING"} 0.0' in generate_latest(node.registry)
    finally:
        await node.stop()
    assert not node.running


async def test_a_part_that_fails_to_start_stops_what_started(gateway: Gateway) -> None:
    """The demo's simulator cannot read its state: the node does not start, and the part before it is stopped."""
    (gateway.settings.data_dir / "sim-state.json").write_text("{not json")
    settings = gateway.settings.with_overrides(demo=True)
    node = Node(Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock))
    assert tuple(part.name for part in node.parts) == ("store metrics", "simulator", *EVERY_PART[1:])
    with pytest.raises(ValueError, match="Expecting property name"):
        await node.start()
    assert not node.running
    await gateway.store.tenants.list_all()
    assert store_operations(node) == 0


async def test_stopping_goes_on_past_a_part_that_fails_to_stop(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    node = Node(gateway)
    calls: list[str] = []

    def part(name: str, *, start_fails: bool = False, stop_fails: bool = False) -> Part:
        async def start() -> None:
            calls.append(f"start {name}")
            if start_fails:
                raise RuntimeError(f"{name} cannot start")

        async def stop() -> None:
            calls.append(f"stop {name}")
            if stop_fails:
                raise RuntimeError(f"{name} cannot stop")

        return Part(name, start, stop)

    node.parts = (part("a"), part("b", stop_fails=True), part("c", start_fails=True), part("d"))
    with pytest.raises(RuntimeError, match="c cannot start"):
        await node.start()
    # c's start was cut short: it stops too (it may hold what it began), then b (which fails) and a; d never starts.
    assert calls == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert not node.running
    assert "b failed to stop cleanly" in caplog.text

    calls.clear()
    node.parts = node.parts[:2]
    await node.start()
    assert node.running == ("a", "b")
    await node.stop()
    assert calls == ["start a", "start b", "stop b", "stop a"]

"""``GET /api/server/status`` (admin): how this gateway process and what it depends on are doing."""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from wagate import __version__
from wagate.api.deps import AdminDep, GatewayDep, get_node
from wagate.api.metrics import HttpMetrics
from wagate.api.schemas import error_answers
from wagate.domain.sessions import Desired, Status
from wagate.errors import StoreError
from wagate.net.redis import redis_status
from wagate.services.sessions import SessionService

__all__ = ["router", "rss_bytes", "server_status"]

router = APIRouter(prefix="/api/server", tags=["server"], responses=error_answers(401, 403, 503))


def rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the peak, where /proc is missing


@router.get("/status", summary="Store and Redis reachability, sessions, resources, errors, uptime, version")
async def server_status(request: Request, gateway: GatewayDep, _admin: AdminDep) -> dict[str, Any]:
    node = get_node(request)
    metrics: HttpMetrics = request.app.state.metrics
    try:
        latency = await gateway.store.ping()
        store: dict[str, Any] = {
            "backend": gateway.store.backend,
            "reachable": True,
            "latency_ms": round(latency * 1000, 2),
        }
        # As the sessions are, not as their rows last said: a row that speaks for a dead worker is not WORKING.
        counts = await SessionService(gateway, node.supervisor, actor="api").count_by_status()
    except StoreError as exc:
        store = {"backend": gateway.store.backend, "reachable": False, "error": type(exc).__name__}
        counts = Counter()
    wanted = sum(n for (_, desired), n in counts.items() if desired is Desired.RUNNING)
    working = sum(n for (status, _), n in counts.items() if status is Status.WORKING)
    by_status: dict[str, int] = {}
    for (status, _), n in counts.items():
        by_status[status.value] = by_status.get(status.value, 0) + n
    uptime = time.time() - node.started
    cpu = time.process_time()
    supervisor = node.supervisor
    workers = (
        {"this": supervisor.owner, "share": supervisor.share, "live": dict(sorted(supervisor.workers.items()))}
        if supervisor is not None
        else None
    )
    return {
        "version": __version__,
        "uptime_s": round(uptime, 1),
        "pid": os.getpid(),
        "store": store,
        "redis": await redis_status(gateway.settings),
        "sessions": {
            "total": sum(counts.values()),
            "by_status": by_status,
            "should_run": wanted,
            "healthy_percent": round(100.0 * working / wanted, 1) if wanted else 100.0,
        },
        "workers": workers,  # as of this worker's last reconcile: each live worker and the sessions it runs
        "engine_hosts": supervisor.engines.hosts() if supervisor is not None else [],
        "memory_rss_bytes": rss_bytes(),
        "cpu_seconds": round(cpu, 2),
        "cpu_percent": round(100.0 * cpu / uptime, 1) if uptime > 0 else 0.0,
        "requests": metrics.requests,
        "error_rate": round(metrics.errors / metrics.requests, 4) if metrics.requests else 0.0,
        "avg_response_ms": round(1000 * metrics.request_seconds / metrics.requests, 2) if metrics.requests else 0.0,
    }

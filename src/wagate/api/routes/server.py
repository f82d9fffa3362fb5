"""The server's own routes, WAHA's: ``/ping``, ``/api/version``, ``/api/server/version``,
``/api/server/environment`` and ``/api/server/status``.

A tenant's key reads the status of its own sessions; the admin's adds the process's health (store, Redis, workers,
engine hosts, resources, request figures). The environment is the admin's: it describes the installation.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from wagate import __version__
from wagate.api.deps import AdminDep, GatewayDep, PrincipalDep, get_node
from wagate.api.metrics import HttpMetrics
from wagate.api.node import ServedNode
from wagate.api.schemas import error_answers
from wagate.config import Settings, env_name
from wagate.domain.sessions import Desired, Status
from wagate.domain.waha import environment
from wagate.errors import StoreError
from wagate.gateway import Gateway
from wagate.net.redis import redis_status
from wagate.services.sessions import SessionService

__all__ = [
    "Environment",
    "EnvironmentWorker",
    "Ping",
    "ServerStatus",
    "SessionCounts",
    "WorkerInfo",
    "installation",
    "ping",
    "router",
    "rss_bytes",
    "server_environment",
    "server_status",
    "server_version",
    "settings_environment",
    "version",
]

router = APIRouter(tags=["server"], responses=error_answers(401, 403, 503))


class Ping(BaseModel):
    message: str = Field(description="always pong")


class WorkerInfo(BaseModel):
    id: str = Field(description="the process that answers (its worker id and a suffix of its own)")


class EnvironmentWorker(BaseModel):
    id: str | None = Field(description="the process that answers")


class Environment(BaseModel):
    """WAHA's ``WAHAEnvironment``."""

    version: str = Field(description="wagate's version")
    engine: str = Field(description="the default engine, by WAHA's name for its kind (GOWS: whatsmeow)")
    tier: str = Field(description="WAGATE: not one of WAHA's editions")
    browser: str = Field(description="no browser runs: empty")
    platform: str = Field(description="operating system and machine, e.g. linux/x86_64")
    worker: EnvironmentWorker


class SessionCounts(BaseModel):
    total: int
    by_status: dict[str, int]
    should_run: int = Field(description="sessions asked to run")
    healthy_percent: float = Field(description="of those asked to run, the share WORKING")


class ServerStatus(BaseModel):
    """WAHA's ``ServerStatusResponse``, with wagate's version and session counts; the admin's key adds the rest."""

    start_timestamp: int = Field(alias="startTimestamp", description="when this process started (ms)")
    uptime: int = Field(description="how long this process has run (ms)")
    worker: WorkerInfo
    version: str
    sessions: SessionCounts | None = Field(
        description="the caller's sessions (all tenants' for the admin), as they are; null while the store is out"
    )
    store: dict[str, Any] | None = Field(None, description="admin only: backend, reachable, latency_ms")
    redis: dict[str, Any] | None = Field(None, description="admin only: configured, reachable, latency_ms")
    workers: dict[str, Any] | None = Field(
        None, description="admin only: as of this worker's last reconcile, each live worker and the sessions it runs"
    )
    engine_hosts: list[dict[str, Any]] | None = Field(None, description="admin only: this process's engine hosts")
    pid: int | None = Field(None, description="admin only")
    memory_rss_bytes: int | None = Field(None, description="admin only")
    cpu_seconds: float | None = Field(None, description="admin only")
    cpu_percent: float | None = Field(None, description="admin only")
    requests: int | None = Field(None, description="admin only: requests this process answered")
    error_rate: float | None = Field(None, description="admin only: the share of them answered 5xx")
    avg_response_ms: float | None = Field(None, description="admin only")


def rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the peak, where /proc is missing


def installation(gateway: Gateway, node: ServedNode) -> Environment:
    """What WAHA calls the environment: version, engine, platform and the answering process."""
    machine = f"{platform.system().lower()}/{platform.machine()}"
    return Environment.model_validate(environment(__version__, gateway.settings.default_engine, machine, node.process))


@router.get("/ping", summary="The server answers (no key needed)", tags=["health"])
async def ping() -> Ping:
    return Ping(message="pong")


@router.get("/api/version", summary="The version, engine and platform (WAHA's WAHAEnvironment)")
async def version(request: Request, gateway: GatewayDep, _caller: PrincipalDep) -> Environment:
    return installation(gateway, get_node(request))


@router.get("/api/server/version", summary="The version, engine and platform (as /api/version)")
async def server_version(request: Request, gateway: GatewayDep, _caller: PrincipalDep) -> Environment:
    return installation(gateway, get_node(request))


def settings_environment(settings: Settings, *, every: bool) -> dict[str, str | None]:
    """The settings as the variables that set them; a secret shows as ``***`` when set, never its value.
    ``every``: the settings left at their defaults too, not only those set."""
    given = settings.model_fields_set
    out: dict[str, str | None] = {}
    for field in sorted(type(settings).model_fields):
        if not every and field not in given:
            continue
        value = getattr(settings, field)
        if value is None:
            out[env_name(field)] = None
        elif hasattr(value, "get_secret_value"):
            out[env_name(field)] = "***"
        else:
            out[env_name(field)] = str(value.value if hasattr(value, "value") else value)
    return out


@router.get(
    "/api/server/environment",
    summary="The settings in force, as WAGATE_* variables (secrets masked; admin)",
    responses=error_answers(422),
)
async def server_environment(
    gateway: GatewayDep,
    _admin: AdminDep,
    all: Annotated[bool, Query(description="the settings left at their defaults too")] = False,
) -> dict[str, str | None]:
    return settings_environment(gateway.settings, every=all)


def _counts(counts: Counter[tuple[Status, Desired]]) -> SessionCounts:
    wanted = sum(n for (_, desired), n in counts.items() if desired is Desired.RUNNING)
    working = sum(n for (status, _), n in counts.items() if status is Status.WORKING)
    by_status: dict[str, int] = {}
    for (status, _), n in counts.items():
        by_status[status.value] = by_status.get(status.value, 0) + n
    return SessionCounts(
        total=sum(counts.values()),
        by_status=by_status,
        should_run=wanted,
        healthy_percent=round(100.0 * working / wanted, 1) if wanted else 100.0,
    )


@router.get(
    "/api/server/status",
    summary="Uptime and sessions; with the admin's key also the store, Redis, workers and resources",
    response_model_exclude_unset=True,
)
async def server_status(request: Request, gateway: GatewayDep, principal: PrincipalDep) -> ServerStatus:
    node = get_node(request)
    service = SessionService(gateway, node.supervisor, actor="api")
    uptime = time.time() - node.started
    answer = ServerStatus(
        startTimestamp=int(node.started * 1000),
        uptime=int(uptime * 1000),
        worker=WorkerInfo(id=node.process),
        version=__version__,
        sessions=None,
    )
    try:
        latency = await gateway.store.ping()
        # As the sessions are, not as their rows last said: a row that speaks for a dead worker is not WORKING.
        if principal.tenant_id is not None:
            listed = await service.list(principal.tenant_id, include_stopped=True)
            mine = [s for s in listed if principal.scope.reaches(s.name)]
            counts: Counter[tuple[Status, Desired]] = Counter((s.status, s.desired) for s in mine)
        else:
            counts = await service.count_by_status()
        answer.sessions = _counts(counts)
        store: dict[str, Any] = {
            "backend": gateway.store.backend,
            "reachable": True,
            "latency_ms": round(latency * 1000, 2),
        }
    except StoreError as exc:
        store = {"backend": gateway.store.backend, "reachable": False, "error": type(exc).__name__}
    if principal.is_admin:
        await _add_process(answer, request, node, store, uptime)
    return answer


async def _add_process(
    answer: ServerStatus, request: Request, node: ServedNode, store: dict[str, Any], uptime: float
) -> None:
    metrics: HttpMetrics = request.app.state.metrics
    cpu = time.process_time()
    supervisor = node.supervisor
    answer.store = store
    answer.redis = await redis_status(node.gateway.settings)
    answer.workers = (
        {"this": supervisor.owner, "share": supervisor.share, "live": dict(sorted(supervisor.workers.items()))}
        if supervisor is not None
        else None
    )
    answer.engine_hosts = supervisor.engines.hosts() if supervisor is not None else []
    answer.pid = os.getpid()
    answer.memory_rss_bytes = rss_bytes()
    answer.cpu_seconds = round(cpu, 2)
    answer.cpu_percent = round(100.0 * cpu / uptime, 1) if uptime > 0 else 0.0
    answer.requests = metrics.requests
    answer.error_rate = round(metrics.errors / metrics.requests, 4) if metrics.requests else 0.0
    answer.avg_response_ms = round(1000 * metrics.request_seconds / metrics.requests, 2) if metrics.requests else 0.0

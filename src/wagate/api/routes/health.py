"""``/health`` (the process is up), ``/ready`` (the store answers, is migrated and takes writes) and ``/metrics``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from wagate import __version__
from wagate.api.deps import GatewayDep, get_node
from wagate.api.errors import error_response
from wagate.api.schemas import error_answers
from wagate.errors import StoreError

__all__ = ["Health", "Indicator", "Ready", "health", "metrics", "ready", "router"]

router = APIRouter(tags=["health"])


class Ready(BaseModel):
    status: Literal["ready"]
    store: str = Field(description="sqlite or postgresql")
    store_latency_ms: float


_READY: dict[int | str, dict[str, Any]] = {200: {"model": Ready}}


class Indicator(BaseModel):
    status: str = Field(description="up")


class Health(BaseModel):
    """WAHA's health answer. Liveness only: the process answers (``/ready`` checks the store)."""

    status: str = Field(description="ok")
    info: dict[str, Indicator] | None = Field(description="what is up")
    error: dict[str, Indicator] | None = Field(description="what is down: nothing, while the process answers")
    details: dict[str, Indicator] = Field(description="every indicator")
    version: str


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    up = {"process": Indicator(status="up")}
    return Health(status="ok", info=up, error={}, details=up, version=__version__)


@router.get(
    "/ready",
    summary="Readiness: the store is reachable, migrated and takes writes",
    response_model=None,
    responses=_READY | error_answers(503),
)
async def ready(gateway: GatewayDep) -> JSONResponse | dict[str, object]:
    try:
        latency = await gateway.store.ping()
        migrated = await gateway.store.is_migrated()
        refused = await gateway.store.write_refusal()
    except StoreError:
        return error_response(503, "store_unavailable", "the store cannot be reached")
    if not migrated:
        return error_response(503, "not_migrated", "the store's schema is behind this version")
    if refused is not None:
        return error_response(503, refused.code, f"the store refuses writes: {refused}")
    return {"status": "ready", "store": gateway.store.backend, "store_latency_ms": round(latency * 1000, 2)}


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=Response,
    responses={
        200: {"description": "the text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(get_node(request).registry), media_type=CONTENT_TYPE_LATEST)

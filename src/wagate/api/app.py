"""The application factory: the API's routes over a node, and in demo mode the simulator's control API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from wagate import __version__
from wagate.api.demo import key_access
from wagate.api.deps import identify
from wagate.api.errors import install_error_handlers
from wagate.api.intake import BodyGate, body_limit
from wagate.api.keycache import KeyCache
from wagate.api.metrics import HttpMetrics, MeasuredRequests
from wagate.api.node import ServedNode
from wagate.api.openapi import install_openapi
from wagate.api.routes import (
    auth,
    backups,
    chats,
    contacts,
    dashboard,
    deliveries,
    events,
    health,
    keys,
    messages,
    sending,
    server,
    sessions,
    sessions_legacy,
    sharing,
    tenants,
    webhook_events,
    webhooks,
)
from wagate.api.scopes import enforce
from wagate.engines.sim.app import CONTROL_MAX_BODY
from wagate.web import STATIC_DIR

__all__ = ["DEMO_SIM_PATH", "DOCS_ASSETS_PATH", "create_app", "create_worker_app"]

DEMO_SIM_PATH = "/sim"
DOCS_ASSETS_PATH = "/docs/assets"


def _lifespan(node: ServedNode) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop()

    return lifespan


def _serve_node(app: FastAPI, node: ServedNode, *, sim_path: str | None) -> None:
    """What every app of a node has: the node in its state, the body gate, the HTTP metrics, the error shape."""
    app.state.node = node
    app.state.gateway = node.gateway
    app.state.metrics = metrics = HttpMetrics(node.registry)
    app.state.keys = keys = KeyCache(node.gateway.store, node.gateway.settings)
    node.gateway.bus.revocation_listeners.append(keys.forget)  # every revocation, from here or from elsewhere
    api_limit = body_limit(node.gateway.settings)
    sim_prefix = None if sim_path is None else sim_path + "/"
    app.add_middleware(
        BodyGate,
        limit=lambda path: CONTROL_MAX_BODY if sim_prefix and path.startswith(sim_prefix) else api_limit,
        needs_key=lambda path: path.startswith("/api/") or bool(sim_prefix and path.startswith(sim_prefix)),
        identify=lambda api_key: identify(keys, api_key),
    )
    app.add_middleware(MeasuredRequests, metrics=metrics)  # outside the gate: its refusals are counted too
    install_error_handlers(app)


def create_app(node: ServedNode) -> FastAPI:
    """The ASGI app serving ``node``: it mounts the routes, and its lifespan starts and stops the node (the gateway
    under the node is its caller's, which closes it after the app has stopped)."""
    sim = node.sim
    # /docs from Swagger UI's files as fastapi-offline ships them, not from a CDN: the reference works offline.
    app = FastAPIOffline(
        title="wagate",
        version=__version__,
        summary="Self-hosted WhatsApp session gateway",
        lifespan=_lifespan(node),
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS_PATH,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        dependencies=[Depends(enforce)],  # every route's need of the caller's key (wagate.api.scopes)
    )
    app.state.demo = sim is not None
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _serve_node(app, node, sim_path=DEMO_SIM_PATH if sim is not None else None)
    routers = (
        dashboard,
        health,
        server,
        tenants,
        keys,
        sessions,
        sessions_legacy,
        backups,
        auth,
        webhooks,
        deliveries,
        events,
        sending,
        sharing,
        messages,
        chats,
        contacts,
    )
    for module in routers:
        app.include_router(module.router)
    webhook_events.declare(app.webhooks)
    install_openapi(app)
    if sim is not None:
        from wagate.engines.sim.app import create_sim_app

        app.mount(DEMO_SIM_PATH, create_sim_app(sim, manage_lifecycle=False, access=key_access(app)))
    return app


def create_worker_app(node: ServedNode) -> FastAPI:
    """The app of a worker-only process (``wagate worker``): no tenant API, only health, readiness and metrics, and
    the requests only the worker running a session can answer (its QR code, a pairing code), which the API
    processes forward to it with the caller's key (checked here again)."""
    app = FastAPI(
        title="wagate worker",
        version=__version__,
        lifespan=_lifespan(node),
        openapi_url=None,
        dependencies=[Depends(enforce)],
    )
    _serve_node(app, node, sim_path=None)
    for module in (health, auth):
        app.include_router(module.router)
    return app

"""The application factory: the API, the supervisor, and in demo mode a simulator inside the process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from wagate import __version__
from wagate.api.demo import key_access, refuse_in_production
from wagate.api.deps import identify
from wagate.api.errors import install_error_handlers
from wagate.api.intake import BodyGate, body_limit
from wagate.api.openapi import install_openapi
from wagate.api.routes import (
    auth,
    backups,
    dashboard,
    events,
    health,
    keys,
    messages,
    server,
    sessions,
    tenants,
    webhooks,
)
from wagate.config import Settings
from wagate.engines.registry import EngineRegistry
from wagate.engines.sim.app import CONTROL_MAX_BODY
from wagate.fanout.peers import PeerEvents
from wagate.gateway import Gateway
from wagate.runtime.metrics import Metrics
from wagate.supervisor.supervisor import Supervisor
from wagate.web import STATIC_DIR
from wagate.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("wagate.api")

DEMO_SIM_PATH = "/sim"
DOCS_ASSETS_PATH = "/docs/assets"


def create_app(settings: Settings, *, gateway: Gateway, supervise: bool = True) -> FastAPI:
    """The ASGI app over an open gateway, which its caller closes after the app has stopped.

    ``supervise`` runs the sessions in this process; without it the API only records what tenants want.
    """
    sim = None
    if settings.demo:
        refuse_in_production(settings)
        from wagate.engines.sim.server import SimServer

        sim = SimServer(state_path=settings.data_dir / "sim-state.json")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway.store.set_observer(metrics.observe_store)
        supervisor = None
        dispatcher = None
        peers = None
        try:
            if sim is not None:
                await sim.start()
            if supervise:
                sim_url = f"ws://127.0.0.1:{settings.port}{DEMO_SIM_PATH}/ws" if sim is not None else None
                supervisor = Supervisor(gateway, EngineRegistry(settings, sim_url=sim_url))
                dispatcher = WebhookDispatcher(
                    gateway.store, settings, gateway.clock, owner=supervisor.owner, takeover=supervisor.takeover
                )
                app.state.supervisor = supervisor
                app.state.dispatcher = dispatcher
                metrics.gateway.supervisor, metrics.gateway.dispatcher = supervisor, dispatcher
                dispatcher.observe_lag = metrics.webhook_lag.observe
                await dispatcher.start()  # first: the deliveries of the sessions' first events are claimed for it
                peers = PeerEvents(
                    gateway.store,
                    gateway.bus,
                    supervisor.owner,
                    on_peer=supervisor.peer_heard,
                    on_webhook=dispatcher.forget_endpoint,
                )
                metrics.gateway.peers = app.state.peers = peers
                peers.start()
                await supervisor.start()
            yield
        finally:
            if peers is not None:
                await peers.stop()
            if supervisor is not None:
                await supervisor.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            if sim is not None:
                await sim.stop()
            gateway.store.set_observer(None)
            log.info("stopped")

    # /docs from Swagger UI's files as fastapi-offline ships them, not from a CDN: the reference works offline.
    app = FastAPIOffline(
        title="wagate",
        version=__version__,
        summary="Self-hosted WhatsApp session gateway",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS_PATH,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    app.state.gateway = gateway
    app.state.metrics = metrics
    app.state.demo = sim is not None
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    api_limit = body_limit(settings)
    app.add_middleware(
        BodyGate,
        limit=lambda path: CONTROL_MAX_BODY if path.startswith(DEMO_SIM_PATH + "/") else api_limit,
        needs_key=lambda path: path.startswith("/api/") or (sim is not None and path.startswith(DEMO_SIM_PATH + "/")),
        identify=lambda api_key: identify(app.state.gateway, api_key),
    )
    app.middleware("http")(metrics.middleware)  # outside the gate: its refusals are counted too
    install_error_handlers(app)
    for module in (dashboard, health, server, tenants, keys, sessions, backups, auth, webhooks, events, messages):
        app.include_router(module.router)
    install_openapi(app)
    if sim is not None:
        from wagate.engines.sim.app import create_sim_app

        app.mount(DEMO_SIM_PATH, create_sim_app(sim, manage_lifecycle=False, access=key_access(app)))
    return app

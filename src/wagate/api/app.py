"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from wagate import __version__
from wagate.accounts import announce_admin_key, bootstrap_admin
from wagate.api.errors import install_error_handlers
from wagate.api.routes import health, keys, sessions, tenants
from wagate.config import Settings
from wagate.crypto.keyring import Keyring
from wagate.gateway import Gateway

log = logging.getLogger("wagate.api")


def create_app(settings: Settings, *, gateway: Gateway | None = None, keyring: Keyring | None = None) -> FastAPI:
    """The ASGI app. Given a gateway it uses it (tests); otherwise it opens one at start-up and closes it at exit."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = gateway is None
        gw = gateway if gateway is not None else await Gateway.open(settings, keyring=keyring)
        app.state.gateway = gw
        if owned:
            secret = await bootstrap_admin(gw.store, settings)
            if secret is not None:
                announce_admin_key(secret)
        try:
            yield
        finally:
            if owned:
                await gw.close()
                log.info("stopped")

    app = FastAPI(
        title="wagate",
        version=__version__,
        summary="Self-hosted WhatsApp session gateway",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    if gateway is not None:
        app.state.gateway = gateway
    install_error_handlers(app)
    for module in (health, tenants, keys, sessions):
        app.include_router(module.router)
    return app

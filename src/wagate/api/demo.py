"""Demo mode: a simulator inside the gateway, its control API at ``/sim`` behind the gateway's API keys.

The admin key may do everything there; a tenant's key only what concerns the devices its own sessions linked (the
sim engine labels each connection with its tenant): scan the QR code one of them shows, enter a pairing code one of
them asked for, inject messages into its device, read what it sent, inject faults. Another tenant's device or code
is answered as one that does not exist (404). The demo never runs in production: its simulator is a fake WhatsApp.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from wagate.api.deps import identify
from wagate.api.intake import PRINCIPAL
from wagate.config import Settings
from wagate.domain.tenants import Principal
from wagate.engines.sim.app import Access
from wagate.engines.sim.server import SimError
from wagate.errors import ConfigError, Unauthorized

__all__ = ["DEMO_IN_PRODUCTION", "key_access", "refuse_in_production"]

DEMO_IN_PRODUCTION = "--demo runs a fake WhatsApp for trying wagate out; it is refused with WAGATE_ENV=production"


def refuse_in_production(settings: Settings) -> None:
    """Raises ``ConfigError`` (a one-line reason) for demo mode in production."""
    if settings.demo and settings.production:
        raise ConfigError(DEMO_IN_PRODUCTION)


def key_access(app: FastAPI) -> Access:
    """The simulator's check of a control request: the gateway's key, and the tenant it limits the caller to."""

    async def check(request: Request) -> str | None:
        principal = getattr(request.state, PRINCIPAL, None)  # found before a body was read
        if not isinstance(principal, Principal):
            try:
                principal = await identify(app.state.keys, request.headers.get("x-api-key"))
            except Unauthorized as exc:
                raise SimError(401, exc.message, exc.code) from None
        return None if principal.is_admin else principal.tenant_id

    return check

"""Request dependencies: the gateway, the supervisor, and who is calling (from ``X-Api-Key``)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from wagate.api.intake import PRINCIPAL
from wagate.api.keycache import KeyCache
from wagate.api.node import ServedNode
from wagate.domain.tenants import Principal
from wagate.errors import Forbidden, Unauthorized
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.supervisor.supervisor import Supervisor

__all__ = [
    "AdminDep",
    "GatewayDep",
    "PrincipalDep",
    "SupervisorDep",
    "TenantDep",
    "api_key_header",
    "get_gateway",
    "get_keys",
    "get_node",
    "get_principal",
    "get_supervisor",
    "get_tenant_id",
    "identify",
    "require_admin",
]

api_key_header = APIKeyHeader(name="X-Api-Key", auto_error=False, description="API key of a tenant or the admin")


def get_node(request: Request) -> ServedNode:
    return cast(ServedNode, request.app.state.node)


def get_gateway(request: Request) -> Gateway:
    return cast(Gateway, request.app.state.gateway)


def get_supervisor(request: Request) -> Supervisor | None:
    """None when this process serves the API without running sessions."""
    return get_node(request).supervisor


# The dependencies are coroutines: FastAPI runs a plain function dependency on a worker thread, a hop to another
# thread and back for each one on every request.
async def _gateway(request: Request) -> Gateway:
    return get_gateway(request)


async def _supervisor(request: Request) -> Supervisor | None:
    return get_supervisor(request)


GatewayDep = Annotated[Gateway, Depends(_gateway)]
SupervisorDep = Annotated[Supervisor | None, Depends(_supervisor)]


def get_keys(request: Request) -> KeyCache:
    return cast(KeyCache, request.app.state.keys)


async def identify(keys: KeyCache, api_key: str | None) -> Principal:
    """Who holds ``api_key``; ``Unauthorized`` when it is missing or not valid."""
    if not api_key:
        raise Unauthorized("send your API key in the X-Api-Key header", code="missing_api_key")
    principal = await keys.principal(api_key)
    if principal is None:
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    return principal


async def get_principal(request: Request, api_key: Annotated[str | None, Security(api_key_header)]) -> Principal:
    found = getattr(request.state, PRINCIPAL, None)  # the body gate's, before it let the body be read
    if isinstance(found, Principal):
        return found
    return await identify(get_keys(request), api_key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_tenant_id(principal: PrincipalDep) -> TenantId:
    if principal.tenant_id is None:
        raise Forbidden("this route acts for a tenant: use a tenant's API key", code="tenant_key_required")
    return principal.tenant_id


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this route needs the admin key", code="admin_key_required")
    return principal


TenantDep = Annotated[TenantId, Depends(get_tenant_id)]
AdminDep = Annotated[Principal, Depends(require_admin)]

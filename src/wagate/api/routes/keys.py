"""``/api/keys``: a tenant manages its own keys; the admin manages everyone's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from wagate.api.deps import GatewayDep, PrincipalDep
from wagate.api.routes.events import end_streams
from wagate.api.schemas import KeyCreate, KeyCreated, KeyOut, error_answers
from wagate.domain.tenants import Role
from wagate.errors import Forbidden, NotFound, Unprocessable
from wagate.ids import API_KEY_ID_PATTERN, TENANT_ID_PATTERN, ApiKeyId, TenantId
from wagate.services.accounts import issue_key

__all__ = ["create_key", "list_keys", "revoke_key", "router"]

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=error_answers(401, 503))


@router.get("", summary="List API keys (never the keys themselves)", responses=error_answers(422))
async def list_keys(
    gateway: GatewayDep,
    principal: PrincipalDep,
    tenant_id: Annotated[
        str | None, Query(pattern=TENANT_ID_PATTERN, description="admin only: one tenant's keys")
    ] = None,
) -> list[KeyOut]:
    scope = principal.tenant_id if not principal.is_admin else (TenantId(tenant_id) if tenant_id else None)
    return [KeyOut.of(k) for k in await gateway.store.api_keys.list_keys(scope)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key, shown once",
    responses=error_answers(400, 403, 404, 413, 422),
)
async def create_key(body: KeyCreate, gateway: GatewayDep, principal: PrincipalDep) -> KeyCreated:
    if principal.is_admin:
        if body.tenant_id is None:
            raise Unprocessable("tenant_id: the tenant the key is for is required", code="tenant_required")
        tenant_id = TenantId(body.tenant_id)
        if await gateway.store.tenants.get(tenant_id) is None:
            raise NotFound("no such tenant", code="tenant_not_found")
    else:
        if body.tenant_id is not None and body.tenant_id != principal.tenant_id:
            raise Forbidden("a tenant key can only create keys for its own tenant", code="forbidden")
        assert principal.tenant_id is not None
        tenant_id = principal.tenant_id
    issued = await issue_key(gateway.store, tenant_id=tenant_id, role=Role.TENANT, name=body.name)
    return KeyCreated(**KeyOut.of(issued.key).model_dump(), api_key=issued.secret)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key: its open WebSocket streams close (4401) and its tickets stop working",
    responses=error_answers(404, 422),
)
async def revoke_key(
    request: Request,
    key_id: Annotated[str, Path(pattern=API_KEY_ID_PATTERN, description="the key's id")],
    gateway: GatewayDep,
    principal: PrincipalDep,
) -> Response:
    scope = None if principal.is_admin else principal.tenant_id
    if not await gateway.store.api_keys.revoke(ApiKeyId(key_id), tenant_id=scope):
        raise NotFound("no such key", code="key_not_found")
    end_streams(request, keys=[ApiKeyId(key_id)])
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""``/api/tenants`` (admin): tenants and their first key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from wagate.api.deps import AdminDep, GatewayDep
from wagate.api.routes.events import end_streams
from wagate.api.schemas import TenantCreate, TenantCreated, TenantOut, TenantUpdate, error_answers
from wagate.errors import AlreadyExists, Conflict, NotFound
from wagate.ids import TENANT_ID_PATTERN, TenantId
from wagate.services.accounts import create_tenant

__all__ = ["TenantPath", "delete_tenant", "get_tenant", "list_tenants", "patch_tenant", "post_tenant", "router"]

router = APIRouter(prefix="/api/tenants", tags=["tenants (admin)"], responses=error_answers(401, 403, 503))
TenantPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="the tenant's id")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tenant and its first API key",
    responses=error_answers(400, 409, 413, 422),
)
async def post_tenant(body: TenantCreate, gateway: GatewayDep, _admin: AdminDep) -> TenantCreated:
    try:
        tenant, issued = await create_tenant(
            gateway.store, body.name.strip(), contact_email=body.contact_email, max_sessions=body.max_sessions
        )
    except AlreadyExists:
        raise Conflict(f"a tenant named {body.name!r} exists", code="tenant_exists") from None
    if body.message_retention_days is not None:
        tenant = (
            await gateway.store.tenants.update(tenant.id, {"message_retention_days": body.message_retention_days})
            or tenant
        )
    return TenantCreated(**TenantOut.of(tenant).model_dump(), api_key=issued.secret)


@router.get("", summary="List tenants")
async def list_tenants(gateway: GatewayDep, _admin: AdminDep) -> list[TenantOut]:
    return [TenantOut.of(t) for t in await gateway.store.tenants.list_all()]


@router.get("/{tenant_id}", summary="Get a tenant", responses=error_answers(404, 422))
async def get_tenant(tenant_id: TenantPath, gateway: GatewayDep, _admin: AdminDep) -> TenantOut:
    tenant = await gateway.store.tenants.get(TenantId(tenant_id))
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    return TenantOut.of(tenant)


@router.patch(
    "/{tenant_id}",
    summary="Change a tenant's quota, message retention or contact",
    responses=error_answers(400, 404, 413, 422),
)
async def patch_tenant(tenant_id: TenantPath, body: TenantUpdate, gateway: GatewayDep, _admin: AdminDep) -> TenantOut:
    changes = body.model_dump(exclude_unset=True)
    tenant = await gateway.store.tenants.update(TenantId(tenant_id), changes)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    return TenantOut.of(tenant)


@router.delete(
    "/{tenant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tenant without sessions, and its keys (their WebSocket streams close)",
    responses=error_answers(404, 409, 422),
)
async def delete_tenant(request: Request, tenant_id: TenantPath, gateway: GatewayDep, _admin: AdminDep) -> Response:
    if not await gateway.store.tenants.delete(TenantId(tenant_id)):
        raise NotFound("no such tenant", code="tenant_not_found")
    end_streams(request, tenants=[TenantId(tenant_id)])
    return Response(status_code=status.HTTP_204_NO_CONTENT)

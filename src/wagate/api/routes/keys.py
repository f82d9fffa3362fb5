"""``/api/keys`` in WAHA's shapes (``ApiKeyRequest``, ``ApiKeyDTO``), mapped onto wagate's tenants.

A tenant's own key (``isAdmin: true``) manages the tenant's keys; a scoped key (``isAdmin: false``) reaches one
session (``session``), some actions (``actions``), or both, and manages nothing (``wagate.api.scopes``). The admin
manages every tenant's keys, naming the tenant in ``tenant_id``. Keys are kept as hashes: the key itself is in the
answer that makes it and never again (lists show its prefix and ``…``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from wagate.api.deps import GatewayDep, PrincipalDep
from wagate.api.routes.events import end_streams
from wagate.api.schemas import error_answers
from wagate.domain.sessions import NAME_PATTERN
from wagate.domain.tenants import Action, ApiKey, KeyScope, Principal, Role
from wagate.errors import Forbidden, NotFound, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import API_KEY_ID_PATTERN, TENANT_ID_PATTERN, ApiKeyId, TenantId
from wagate.services.accounts import issue_key

__all__ = [
    "ApiKeyChange",
    "ApiKeyOut",
    "ApiKeyRequest",
    "ControlKeyRequest",
    "SessionActions",
    "create_control_key",
    "create_key",
    "delete_key",
    "list_keys",
    "router",
    "update_key",
]

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=error_answers(401, 403, 503))
_NAME = Field("api", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$", description="wagate's: a label")
_TENANT = Field(None, pattern=TENANT_ID_PATTERN, description="wagate's, the admin's only: the tenant the key is for")


class SessionActions(BaseModel):
    """WAHA's ``SessionActionsDTO``: what a scoped key may do; a flag left out is false."""

    model_config = ConfigDict(extra="forbid")

    read: bool | None = Field(None, description="read the session's data (messages, chats, contacts, groups, events)")
    send: bool | None = Field(None, description="send messages")
    control: bool | None = Field(None, description="start, stop, restart, log out, link (QR, pairing code)")
    setting: bool | None = Field(None, description="change the session's config")
    app: bool | None = Field(None, description="WAHA's apps: wagate has none, so this opens nothing")
    delete: bool | None = Field(None, description="delete the session")

    def granted(self) -> frozenset[Action]:
        return frozenset(a for a in Action if getattr(self, a.value))

    @classmethod
    def of(cls, actions: frozenset[Action]) -> SessionActions:
        return cls(**{a.value: a in actions for a in Action})


class ApiKeyChange(BaseModel):
    """WAHA's ``ApiKeyRequest``: what a key reaches, and whether it is on."""

    model_config = ConfigDict(extra="forbid")

    isAdmin: bool = Field(False, description="the tenant's own key: every session, every action, and its keys")
    session: str | None = Field(None, pattern=NAME_PATTERN.pattern, max_length=64, description="the one session")
    isActive: bool = Field(True, description="false: the key is kept but opens nothing until set true again")
    actions: SessionActions | None = Field(None, description="what the key may do; null: every action")

    def role_and_scope(self) -> tuple[Role, KeyScope]:
        if self.isAdmin:
            if self.session is not None or self.actions is not None:
                raise Unprocessable(
                    "a tenant's own key (isAdmin) reaches every session and action: leave session and actions null",
                    code="admin_key_scoped",
                )
            return Role.TENANT, KeyScope()
        return Role.SCOPED, KeyScope.of(self.session, self.actions.granted() if self.actions is not None else None)


class ApiKeyRequest(ApiKeyChange):
    """WAHA's ``ApiKeyRequest``, with wagate's ``name`` and ``tenant_id`` beside it."""

    name: str = _NAME
    tenant_id: str | None = _TENANT


class ControlKeyRequest(BaseModel):
    """WAHA's ``ScopedApiKeyRequest``."""

    model_config = ConfigDict(extra="forbid")

    session: str = Field(pattern=NAME_PATTERN.pattern, max_length=64, description="the session the key controls")
    tenant_id: str | None = _TENANT


class ApiKeyOut(BaseModel):
    """WAHA's ``ApiKeyDTO``, with wagate's own fields beside it."""

    id: str
    key: str = Field(description="the key itself when it is made; after that, its prefix and '…' (kept as a hash)")
    isActive: bool
    isAdmin: bool = Field(description="the admin's key or a tenant's own; false for a scoped key")
    session: str | None
    actions: SessionActions | None
    name: str
    prefix: str
    tenant_id: str | None
    created_at: float

    @classmethod
    def of(cls, key: ApiKey, secret: str | None = None) -> ApiKeyOut:
        actions = key.scope.actions
        return cls(
            id=key.id,
            key=secret if secret is not None else f"{key.prefix}…",
            isActive=key.active,
            isAdmin=key.role is not Role.SCOPED,
            session=key.scope.session,
            actions=SessionActions.of(actions) if actions is not None else None,
            name=key.name,
            prefix=key.prefix,
            tenant_id=key.tenant_id,
            created_at=key.created_at,
        )


async def _tenant_of(gateway: Gateway, principal: Principal, asked: str | None) -> TenantId:
    """The tenant a key is made for: the caller's own, or the one the admin names."""
    if not principal.is_admin:
        if asked is not None and asked != principal.tenant_id:
            raise Forbidden("a tenant key can only create keys for its own tenant", code="forbidden")
        assert principal.tenant_id is not None
        return principal.tenant_id
    if asked is None:
        raise Unprocessable("tenant_id: the tenant the key is for is required", code="tenant_required")
    if await gateway.store.tenants.get(TenantId(asked)) is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    return TenantId(asked)


def _own(principal: Principal) -> TenantId | None:
    """The tenant whose keys the caller manages; None for the admin (all of them)."""
    return None if principal.is_admin else principal.tenant_id


_KEY_ID = Annotated[str, Path(pattern=API_KEY_ID_PATTERN, description="the key's id")]


@router.get("", summary="List API keys (never the keys themselves)", responses=error_answers(422))
async def list_keys(
    gateway: GatewayDep,
    principal: PrincipalDep,
    tenant_id: Annotated[
        str | None, Query(pattern=TENANT_ID_PATTERN, description="admin only: one tenant's keys")
    ] = None,
) -> list[ApiKeyOut]:
    scope = _own(principal) if not principal.is_admin else (TenantId(tenant_id) if tenant_id else None)
    return [ApiKeyOut.of(k) for k in await gateway.store.api_keys.list_keys(scope)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key, shown once",
    responses=error_answers(400, 404, 413, 422),
)
async def create_key(body: ApiKeyRequest, gateway: GatewayDep, principal: PrincipalDep) -> ApiKeyOut:
    tenant_id = await _tenant_of(gateway, principal, body.tenant_id)
    role, scope = body.role_and_scope()
    issued = await issue_key(
        gateway.store, tenant_id=tenant_id, role=role, name=body.name, scope=scope, disabled=not body.isActive
    )
    return ApiKeyOut.of(issued.key, issued.secret)


@router.post(
    "/control",
    status_code=status.HTTP_201_CREATED,
    summary="Create a key that only controls one session (start, stop, restart, log out, link), shown once",
    responses=error_answers(400, 404, 413, 422),
)
async def create_control_key(body: ControlKeyRequest, gateway: GatewayDep, principal: PrincipalDep) -> ApiKeyOut:
    """WAHA answers an existing control key when there is one; wagate keeps keys as hashes, so each call makes a
    new key (the earlier ones keep working until deleted)."""
    tenant_id = await _tenant_of(gateway, principal, body.tenant_id)
    scope = KeyScope.of(body.session, [Action.CONTROL])
    issued = await issue_key(gateway.store, tenant_id=tenant_id, role=Role.SCOPED, name="control", scope=scope)
    return ApiKeyOut.of(issued.key, issued.secret)


@router.put(
    "/{key_id}",
    summary="Change what a key reaches, or switch it off and on (its open streams close, to reopen as it now is)",
    responses=error_answers(400, 404, 413, 422),
)
async def update_key(
    request: Request, key_id: _KEY_ID, body: ApiKeyChange, gateway: GatewayDep, principal: PrincipalDep
) -> ApiKeyOut:
    role, scope = body.role_and_scope()
    updated = await gateway.store.api_keys.update(
        ApiKeyId(key_id), tenant_id=_own(principal), role=role, scope=scope, active=body.isActive
    )
    if updated is None:
        raise NotFound("no such key", code="key_not_found")
    end_streams(request, keys=[updated.id])
    return ApiKeyOut.of(updated)


@router.delete(
    "/{key_id}",
    summary="Delete an API key: its open WebSocket streams close (4401) and its tickets stop working",
    responses=error_answers(404, 422),
)
async def delete_key(request: Request, key_id: _KEY_ID, gateway: GatewayDep, principal: PrincipalDep) -> ApiKeyOut:
    """Answers the key as it was, switched off. Deleting a deleted key is a ``404``."""
    found = await gateway.store.api_keys.get(ApiKeyId(key_id), tenant_id=_own(principal))
    if found is None or not await gateway.store.api_keys.revoke(found.id, tenant_id=_own(principal)):
        raise NotFound("no such key", code="key_not_found")
    end_streams(request, keys=[found.id])
    return ApiKeyOut.of(found).model_copy(update={"isActive": False})

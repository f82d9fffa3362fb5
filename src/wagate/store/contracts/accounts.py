"""Tenants, their API keys and the WebSocket tickets minted under them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any

from wagate.domain.tenants import WHOLE_TENANT, ApiKey, KeyScope, Role, Tenant
from wagate.ids import ApiKeyId, TenantId

__all__ = ["ApiKeyStore", "TenantStore", "TicketStore"]


class TenantStore(ABC):
    @abstractmethod
    async def create(self, name: str, *, contact_email: str | None, max_sessions: int | None) -> Tenant:
        """Raises ``AlreadyExists`` when the name is taken."""

    @abstractmethod
    async def get(self, tenant_id: TenantId) -> Tenant | None: ...

    @abstractmethod
    async def list_all(self) -> list[Tenant]: ...

    @abstractmethod
    async def update(self, tenant_id: TenantId, changes: dict[str, Any]) -> Tenant | None:
        """Change ``max_sessions``, ``message_retention_days`` or ``contact_email``; None when unknown."""

    @abstractmethod
    async def delete(self, tenant_id: TenantId) -> bool:
        """Delete a tenant with no sessions, and its keys. False when unknown."""


class ApiKeyStore(ABC):
    @abstractmethod
    async def create(
        self,
        *,
        tenant_id: TenantId | None,
        role: Role,
        name: str,
        key_hash: str,
        prefix: str,
        scope: KeyScope = WHOLE_TENANT,
        disabled: bool = False,
    ) -> ApiKey: ...

    @abstractmethod
    async def find_active(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, if it opens the API (neither revoked nor switched off)."""

    @abstractmethod
    async def get(self, key_id: ApiKeyId, *, tenant_id: TenantId | None) -> ApiKey | None:
        """An unrevoked key (switched off or not); restricted to one tenant's keys unless ``tenant_id`` is None."""

    @abstractmethod
    async def update(
        self, key_id: ApiKeyId, *, tenant_id: TenantId | None, role: Role, scope: KeyScope, active: bool
    ) -> ApiKey | None:
        """Change what a tenant's key reaches and whether it is on; None when there is no such unrevoked key (the
        admin's keys are not changed here). Its open streams close everywhere, to reopen under what it now is."""

    @abstractmethod
    async def list_keys(self, tenant_id: TenantId | None) -> list[ApiKey]:
        """Unrevoked keys of one tenant, or every one (admin keys included) when ``tenant_id`` is None."""

    @abstractmethod
    async def revoke(self, key_id: ApiKeyId, *, tenant_id: TenantId | None) -> bool:
        """Revoke a key; restricted to one tenant's keys unless ``tenant_id`` is None."""

    @abstractmethod
    async def valid_among(self, key_ids: Collection[ApiKeyId]) -> set[ApiKeyId]:
        """Those of these keys that still work (not revoked, their tenant not deleted): open streams are checked
        against it, in case a revocation's notice did not reach this process."""

    @abstractmethod
    async def has_admin(self) -> bool: ...


class TicketStore(ABC):
    """Short-lived single-use tickets that let a browser open the WebSocket without its API key in the URL."""

    @abstractmethod
    async def issue(self, tenant_id: TenantId, key_id: ApiKeyId, ticket_hash: str, expires_at: float) -> None:
        """A ticket issued under one of the tenant's keys: it works only while that key does."""

    @abstractmethod
    async def redeem(self, ticket_hash: str) -> tuple[TenantId, ApiKeyId] | None:
        """Consume a ticket; its tenant and key when it existed, had not expired and its key is still valid."""

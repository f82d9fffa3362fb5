"""Tenants and their API keys."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wagate.ids import ApiKeyId, TenantId

__all__ = ["ApiKey", "Principal", "Role", "Tenant"]


class Role(StrEnum):
    ADMIN = "admin"
    TENANT = "tenant"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: TenantId
    name: str
    contact_email: str | None
    max_sessions: int | None
    created_at: float
    message_retention_days: float | None = None  # None: keep messages


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: only its hash and a short display prefix are kept, never the key itself."""

    id: ApiKeyId
    tenant_id: TenantId | None
    role: Role
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin, or one tenant through one of its keys."""

    role: Role
    tenant_id: TenantId | None
    key_id: ApiKeyId | None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

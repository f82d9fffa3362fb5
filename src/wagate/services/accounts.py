"""Tenants and API keys as the API and the CLI use them: issue keys (shown once), authenticate, bootstrap the admin."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from wagate.config import Settings
from wagate.crypto.tokens import display_prefix, hash_api_key, new_api_key, same_key
from wagate.domain.tenants import WHOLE_TENANT, ApiKey, KeyScope, Principal, Role, Tenant
from wagate.ids import TenantId
from wagate.store.base import Store

__all__ = [
    "IssuedKey",
    "announce_admin_key",
    "authenticate",
    "bootstrap_admin",
    "create_tenant",
    "issue_key",
    "new_admin_key",
]

log = logging.getLogger("wagate.accounts")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: ``secret`` is its only appearance in clear."""

    key: ApiKey
    secret: str


async def issue_key(
    store: Store,
    *,
    tenant_id: TenantId | None,
    role: Role,
    name: str,
    scope: KeyScope = WHOLE_TENANT,
    disabled: bool = False,
) -> IssuedKey:
    secret = new_api_key()
    key = await store.api_keys.create(
        tenant_id=tenant_id,
        role=role,
        name=name,
        key_hash=hash_api_key(secret),
        prefix=display_prefix(secret),
        scope=scope,
        disabled=disabled,
    )
    log.info("issued %s key %s", role.value, key.id)
    return IssuedKey(key, secret)


async def create_tenant(
    store: Store, name: str, *, contact_email: str | None = None, max_sessions: int | None = None
) -> tuple[Tenant, IssuedKey]:
    """Create a tenant and its first key."""
    tenant = await store.tenants.create(name, contact_email=contact_email, max_sessions=max_sessions)
    issued = await issue_key(store, tenant_id=tenant.id, role=Role.TENANT, name="default")
    log.info("created tenant %s", tenant.id)
    return tenant, issued


async def authenticate(store: Store, settings: Settings, given: str | None) -> Principal | None:
    """Who holds this key, or None. The configured admin key is compared in constant time."""
    if not given:
        return None
    if settings.admin_key is not None and same_key(given, settings.admin_key.get_secret_value()):
        return Principal(Role.ADMIN, None, None)
    key = await store.api_keys.find_active(hash_api_key(given))
    if key is None:
        return None
    return Principal(key.role, key.tenant_id, key.id, key.scope)


async def bootstrap_admin(store: Store, settings: Settings) -> str | None:
    """In development, with no admin key configured or stored, make one and return it to be shown once."""
    if settings.admin_key is not None or await store.api_keys.has_admin():
        return None
    if settings.production:
        log.warning(
            "no admin key: set WAGATE_ADMIN_KEY, or issue one with `wagate admin-key new`, to manage tenants over the"
            " API (the CLI works without it)"
        )
        return None
    issued = await issue_key(store, tenant_id=None, role=Role.ADMIN, name="bootstrap")
    return issued.secret


async def new_admin_key(store: Store, *, keep_others: bool = False) -> tuple[IssuedKey, int]:
    """A new stored admin key, for an operator who lost the one shown at the first start; the admin keys stored
    before are revoked unless ``keep_others`` (WAGATE_ADMIN_KEY is configuration, not touched). The key, and how many
    were revoked."""
    issued = await issue_key(store, tenant_id=None, role=Role.ADMIN, name="cli")
    revoked = 0
    if not keep_others:
        for key in await store.api_keys.list_keys(None):
            if key.role is Role.ADMIN and key.active and key.id != issued.key.id:
                revoked += await store.api_keys.revoke(key.id, tenant_id=None)
    return issued, revoked


def announce_admin_key(secret: str) -> None:
    """Print the bootstrap admin key on the console once; it never goes through logging."""
    print(
        "\n  wagate: generated an admin API key (shown only this once, stored as a hash):\n"
        f"    X-Api-Key: {secret}\n"
        "  Set WAGATE_ADMIN_KEY to choose your own; `wagate admin-key new` issues a new one.\n",
        file=sys.stderr,
        flush=True,
    )

"""Admin keys on every store: a new one issued from the command line replaces (or joins) those stored before."""

from __future__ import annotations

from pathlib import Path

from tests.support.builders import make_settings
from wagate.domain.tenants import Role
from wagate.services.accounts import authenticate, create_tenant, issue_key, new_admin_key
from wagate.store.base import Store


async def test_a_new_admin_key_revokes_the_stored_ones_unless_kept(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    lost = await issue_key(store, tenant_id=None, role=Role.ADMIN, name="bootstrap")
    _, tenant = await create_tenant(store, "acme")

    issued, revoked = await new_admin_key(store)
    assert revoked == 1
    assert await authenticate(store, settings, lost.secret) is None
    principal = await authenticate(store, settings, issued.secret)
    assert principal is not None
    assert principal.role is Role.ADMIN
    assert await authenticate(store, settings, tenant.secret) is not None  # tenants' keys are not touched

    kept, revoked = await new_admin_key(store, keep_others=True)
    assert revoked == 0
    assert await authenticate(store, settings, issued.secret) is not None
    assert await authenticate(store, settings, kept.secret) is not None
    assert await store.api_keys.has_admin()

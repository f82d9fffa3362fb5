"""Builders: the test key-encryption key and admin key, settings around them, and store records to start from."""

from __future__ import annotations

import base64
from pathlib import Path

from wagate.config import Settings
from wagate.domain.sessions import Desired, NewSession, Quotas, Session
from wagate.ids import TenantId
from wagate.store.base import Store

TEST_KEK = "t1:" + base64.b64encode(bytes(range(32))).decode()
ADMIN_KEY = "test-admin-key-0123456789"
QUOTAS = Quotas(per_tenant=10, total=100)


def make_settings(tmp_path: Path, url: str | None = None, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "database_url": url,
        "keys": TEST_KEK,
        "active_key": "t1",
        "admin_key": ADMIN_KEY,
        # No test reaches WhatsApp by accident, online or not (.invalid never resolves).
        "neonize_probe": "web.whatsapp.invalid:443",
    }
    values.update(extra)
    return Settings.model_validate(values)


async def tenant_with_session(store: Store, name: str, session: str = "s") -> tuple[TenantId, Session]:
    tenant = await store.tenants.create(name, contact_email=None, max_sessions=None)
    made = await store.sessions.create(
        NewSession(tenant.id, session, "sim", {}, desired=Desired.RUNNING),
        quotas=QUOTAS,
        actor="test",
    )
    return tenant.id, made

"""``wagate keys rotate`` run as a real command: afterwards every record opens with only the new key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wagate.config import Settings
from wagate.domain.events import Event, EventType
from wagate.domain.sessions import Desired, NewSession, Quotas
from wagate.domain.webhooks import WebhookChange
from wagate.gateway import Gateway
from wagate.ids import SessionId

pytestmark = pytest.mark.e2e

WAGATE = [sys.executable, "-m", "wagate"]


def _env(data_dir: Path, keys: str, active: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
    env.update(WAGATE_DATA_DIR=str(data_dir), WAGATE_KEYS=keys, WAGATE_ACTIVE_KEY=active)
    return env


def _settings(data_dir: Path, keys: str, active: str) -> Settings:
    return Settings.model_validate({"data_dir": data_dir, "keys": keys, "active_key": active})


def _new_key(key_id: str) -> str:
    out = subprocess.run([*WAGATE, "keys", "generate", "--id", key_id], capture_output=True, text=True, check=True)
    return out.stdout.strip()


async def test_rotate_rewraps_every_data_key(tmp_path: Path) -> None:
    old, new = _new_key("old"), _new_key("new")
    gateway = await Gateway.open(_settings(tmp_path, old, "old"))
    tenant = await gateway.store.tenants.create("t", contact_email=None, max_sessions=None)
    expected: dict[SessionId, list[tuple[str, str, bytes]]] = {}
    for i in range(3):
        session = await gateway.store.sessions.create(
            NewSession(tenant.id, f"s{i}", "sim", {}, Desired.STOPPED), quotas=Quotas(10, 10), actor="test"
        )
        lease = await gateway.store.leases.acquire(session.id, "test", ttl=60)
        assert lease is not None
        vault = gateway.vaults.open(tenant.id, session.id, owner="test", epoch=lease.epoch)
        await vault.put_many({("creds", "me"): f"me-{i}".encode(), ("session", "peer"): os.urandom(64)})
        expected[session.id] = await vault.get_all()
        await gateway.store.events.append(
            [Event.new(EventType.MESSAGE, tenant.id, session.id, session.name, 1.0, {"i": i})]
        )
    hook = await gateway.store.webhooks.create(tenant.id, "https://example.com/h", ["*"], None, "whsec_x", limit=5)
    bare = await gateway.store.webhooks.create(tenant.id, "https://example.com/b", ["*"], None, "whsec_y", limit=5)
    headers = (("authorization", "Bearer tok-1"),)
    await gateway.store.webhooks.update(tenant.id, hook.id, WebhookChange(headers=headers))
    await gateway.store.webhooks.rotate_secret(tenant.id, bare.id, "whsec_z", previous_until=time.time() + 3600)
    sealed_before = {sid: await gateway.store.auth.read_all(tenant.id, sid) for sid in expected}
    await gateway.close()

    result = await asyncio.to_thread(
        subprocess.run,
        [*WAGATE, "keys", "rotate"],
        env=_env(tmp_path, f"{old},{new}", "new"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "rewrapped 3 data key(s), resealed 2 webhook secret(s) and 3 event(s)" in result.stdout
    assert old.split(":")[1] not in result.stdout + result.stderr

    only_new = await Gateway.open(_settings(tmp_path, new, "new"))
    try:
        for sid, records in expected.items():
            lease = await only_new.store.leases.acquire(sid, "test", ttl=60)
            assert lease is not None
            vault = only_new.vaults.open(tenant.id, sid, owner="test", epoch=lease.epoch)
            assert await vault.get_all() == records
            # Record ciphertexts were not rewritten: only the wrapped data keys changed.
            assert await only_new.store.auth.read_all(tenant.id, sid) == sealed_before[sid]
        # Events and webhook secrets open with the new key alone.
        assert [e.payload["i"] for e in await only_new.store.events.list_events(tenant.id)] == [0, 1, 2]
        found = await only_new.store.webhooks.secret_all_tenants(hook.id)
        assert found is not None
        assert (found.secret, found.headers) == ("whsec_x", headers)  # its headers too
        other = await only_new.store.webhooks.secret_all_tenants(bare.id)
        assert other is not None
        assert (other.secret, other.headers, other.previous_secret) == ("whsec_z", (), "whsec_y")  # both resealed
    finally:
        await only_new.close()

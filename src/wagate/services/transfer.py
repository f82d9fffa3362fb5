"""Moving a session between installations: ``wagate backup export`` and ``wagate backup import``.

An export file holds the session's settings and a sealed bundle of its auth state, all sealed under the active
key-encryption key: it opens only in an installation that has that key, and any change to it is detected. The
importing installation creates the session (stopped), writes the state under the session's lease, and only then
asks for it to run, so its supervisor connects with the imported credentials: no new QR scan.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from wagate.crypto.envelope import associated_data
from wagate.domain.sessions import Desired, NewSession, Session
from wagate.domain.tenants import Tenant
from wagate.errors import AlreadyExists, CryptoError, WagateError
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.store.vault import open_bundle

__all__ = ["EXPORT_FORMAT", "EXPORT_MAGIC", "TransferError", "export_session", "find_tenant", "import_session"]

EXPORT_MAGIC = b"WAGATE-SESSION-EXPORT\x01"
EXPORT_FORMAT = 1
_AAD = associated_data("session-export")


class TransferError(WagateError):
    """The session cannot be exported or imported as asked."""


async def find_tenant(gateway: Gateway, ref: str) -> Tenant:
    """A tenant by id or by name."""
    tenant = await gateway.store.tenants.get(TenantId(ref))
    if tenant is None:
        tenant = next((t for t in await gateway.store.tenants.list_all() if t.name == ref), None)
    if tenant is None:
        raise TransferError(f"no tenant {ref!r} (give its id or its name)")
    return tenant


async def export_session(gateway: Gateway, tenant_ref: str, name: str) -> bytes:
    tenant = await find_tenant(gateway, tenant_ref)
    session = await gateway.store.sessions.get(tenant.id, name)
    if session is None:
        raise TransferError(f"tenant {tenant.name!r} has no session named {name!r}")
    vault = gateway.vaults.open(tenant.id, session.id, owner="export", epoch=0)  # reads are not fenced
    if not await vault.get_all():
        raise TransferError(f"session {name!r} has no credentials to export (it is not linked)")
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "session": {"name": session.name, "engine": session.engine, "config": session.config, "me": session.me},
        "exported_at": gateway.clock(),
        "bundle": base64.b64encode(await vault.export()).decode(),
    }
    kek_id = gateway.keyring.active_id
    sealed = gateway.keyring.seal_with(kek_id, json.dumps(document).encode(), _AAD)
    encoded_id = kek_id.encode()
    return EXPORT_MAGIC + len(encoded_id).to_bytes(1, "big") + encoded_id + sealed


def _open(gateway: Gateway, data: bytes) -> dict[str, Any]:
    if not data.startswith(EXPORT_MAGIC) or len(data) < len(EXPORT_MAGIC) + 2:
        raise TransferError("not a wagate session export")
    offset = len(EXPORT_MAGIC)
    size = data[offset]
    kek_id = data[offset + 1 : offset + 1 + size].decode(errors="replace")
    try:
        document: dict[str, Any] = json.loads(gateway.keyring.open_with(kek_id, data[offset + 1 + size :], _AAD))
    except CryptoError as exc:
        raise TransferError(f"the export does not open with this installation's keys: {exc}") from None
    if document.get("format") != EXPORT_FORMAT:
        raise TransferError(f"unsupported export format {document.get('format')!r}")
    return document


async def import_session(
    gateway: Gateway, data: bytes, tenant_ref: str, *, name: str | None = None, start: bool = True
) -> Session:
    document = _open(gateway, data)
    bundle = base64.b64decode(document["bundle"])
    open_bundle(gateway.keyring, bundle)  # checked before anything is created
    tenant = await find_tenant(gateway, tenant_ref)
    meta = document["session"]
    new = NewSession(tenant.id, name or meta["name"], meta["engine"], meta["config"], Desired.STOPPED)
    try:
        session = await gateway.store.sessions.create(new, quotas=gateway.quotas_for(tenant), actor="import")
    except AlreadyExists:
        raise TransferError(f"tenant {tenant.name!r} already has a session named {new.name!r}") from None
    owner = f"import#{secrets.token_hex(4)}"
    try:
        lease = await gateway.store.leases.acquire(session.id, owner, ttl=60)
        if lease is None:  # nobody else can know this brand-new session
            raise TransferError("could not take the new session's lease")
        try:
            vault = gateway.vaults.open(tenant.id, session.id, owner=owner, epoch=lease.epoch)
            await vault.import_bundle(bundle)
        finally:
            await gateway.store.leases.release(session.id, owner, lease.epoch)
    except BaseException:
        await gateway.store.sessions.delete(tenant.id, session.name)  # no half-imported session is left behind
        raise
    if start:
        started = await gateway.store.sessions.set_desired(tenant.id, session.name, Desired.RUNNING, actor="import")
        session = started or session
    return session

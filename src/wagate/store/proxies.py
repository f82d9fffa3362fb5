"""A session's proxy password, sealed with the session's data key (the key of its auth state).

The session's config keeps the proxy's server and user name as given and the password only sealed
(``password_sealed``, base64), bound to (tenant, session): a config copied to another session does not open. The
data key survives a logout and a KEK rotation (which rewraps it), and goes with the session when it is deleted.
"""

from __future__ import annotations

import base64
from typing import Any

from wagate.crypto.envelope import associated_data, open_sealed, seal
from wagate.domain.sessions import Proxy
from wagate.errors import CryptoError
from wagate.ids import SessionId, TenantId
from wagate.store.vault import Vaults

__all__ = ["SEALED_FIELD", "open_proxy", "seal_password"]

SEALED_FIELD = "password_sealed"


def _aad(tenant_id: TenantId, session_id: SessionId) -> bytes:
    return associated_data("proxy", tenant_id, session_id)


async def _key(vaults: Vaults, tenant_id: TenantId, session_id: SessionId) -> bytes:
    key = await vaults.data_key(tenant_id, session_id, create=True)
    if key is None:  # create=True always answers with a key
        raise CryptoError(f"session {session_id} has no data key")
    return key


async def seal_password(vaults: Vaults, tenant_id: TenantId, session_id: SessionId, password: str) -> str:
    """``password`` sealed for the session's stored config."""
    sealed = seal(await _key(vaults, tenant_id, session_id), password.encode(), _aad(tenant_id, session_id))
    return base64.b64encode(sealed).decode()


async def open_proxy(
    vaults: Vaults, tenant_id: TenantId, session_id: SessionId, config: dict[str, Any]
) -> Proxy | None:
    """The session's proxy with its password opened; None when it has none. ``CryptoError`` when the sealed
    password no longer opens (the session must not connect without the proxy it was given)."""
    given = config.get("proxy")
    if not isinstance(given, dict) or not given.get("server"):
        return None
    password = None
    if sealed := given.get(SEALED_FIELD):
        key = await _key(vaults, tenant_id, session_id)
        password = open_sealed(key, base64.b64decode(sealed), _aad(tenant_id, session_id)).decode()
    return Proxy(str(given["server"]), given.get("username"), password)

"""Message bodies and queued media, sealed with the session's data key (the key of its auth state).

The associated data binds each ciphertext to (tenant, session, message id), so a body copied to another row does not
open. Deleting a session deletes its data key with its messages; a logout keeps both (the history stays readable).
A body whose bytes changed at rest does not open either: it is reported as unreadable, alone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from wagate.crypto.envelope import associated_data, open_sealed, seal
from wagate.errors import CryptoError
from wagate.ids import SessionId, TenantId
from wagate.store.vault import Vaults

__all__ = ["REPORTED_MAX", "BodySealer"]

log = logging.getLogger("wagate.messages")

REPORTED_MAX = 10_000  # damaged bodies remembered as logged, the oldest forgotten first


class BodySealer:
    """Seals and opens the bodies of one gateway's messages; one per gateway, shared by everything that reads them,
    so that a damaged body is logged once by that gateway, not at every read of its chat."""

    def __init__(self, vaults: Vaults) -> None:
        self._vaults = vaults
        self._reported: dict[tuple[SessionId, str], None] = {}  # insertion-ordered: the oldest first

    def _report_damaged(self, session_id: SessionId, message_id: str) -> None:
        if (session_id, message_id) in self._reported:
            return
        if len(self._reported) >= REPORTED_MAX:
            del self._reported[next(iter(self._reported))]
        self._reported[(session_id, message_id)] = None
        log.error("message %s of session %s: its stored body is damaged and cannot be read", message_id, session_id)

    async def _key(self, tenant_id: TenantId, session_id: SessionId) -> bytes:
        key = await self._vaults.data_key(tenant_id, session_id, create=True)
        if key is None:  # create=True always answers with a key
            raise CryptoError(f"session {session_id} has no data key")
        return key

    async def seal_body(
        self, tenant_id: TenantId, session_id: SessionId, message_id: str, body: dict[str, Any]
    ) -> bytes:
        plain = json.dumps({k: v for k, v in body.items() if v is not None}, separators=(",", ":")).encode()
        aad = associated_data("message", tenant_id, session_id, message_id)
        return seal(await self._key(tenant_id, session_id), plain, aad)

    async def open_body(self, tenant_id: TenantId, session_id: SessionId, message_id: str, sealed: bytes) -> Any:
        aad = associated_data("message", tenant_id, session_id, message_id)
        return json.loads(open_sealed(await self._key(tenant_id, session_id), sealed, aad))

    async def readable_body(
        self, tenant_id: TenantId, session_id: SessionId, message_id: str, sealed: bytes
    ) -> dict[str, Any] | None:
        """The body, or None when its stored bytes no longer open; that is logged at ERROR once per message in this
        gateway, with the session and the message id (never anything of the contents)."""
        try:
            body: dict[str, Any] = await self.open_body(tenant_id, session_id, message_id, sealed)
        except CryptoError:
            self._report_damaged(session_id, message_id)
            return None
        return body

    async def seal_media(self, tenant_id: TenantId, session_id: SessionId, message_id: str, data: bytes) -> bytes:
        aad = associated_data("media", tenant_id, session_id, message_id)
        return seal(await self._key(tenant_id, session_id), data, aad)

    async def open_media(self, tenant_id: TenantId, session_id: SessionId, message_id: str, sealed: bytes) -> bytes:
        aad = associated_data("media", tenant_id, session_id, message_id)
        return open_sealed(await self._key(tenant_id, session_id), sealed, aad)

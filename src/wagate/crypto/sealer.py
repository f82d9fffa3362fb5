"""Sealing under the keyring for what the store keeps beside auth state: event payloads and webhook secrets.

Each value is sealed under the active KEK with associated data naming its purpose and owner (tenant, session,
event or webhook id), so a value copied to another row does not open.
"""

from __future__ import annotations

from wagate.crypto.envelope import associated_data
from wagate.crypto.keyring import Keyring

__all__ = ["KeyringSealer"]


class KeyringSealer:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def seal(self, plaintext: bytes, purpose: str, *parts: str) -> tuple[str, bytes]:
        kek_id = self._keyring.active_id
        return kek_id, self._keyring.seal_with(kek_id, plaintext, associated_data(purpose, *parts))

    def open(self, key_id: str, sealed: bytes, purpose: str, *parts: str) -> bytes:
        return self._keyring.open_with(key_id, sealed, associated_data(purpose, *parts))

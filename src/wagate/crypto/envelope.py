"""AES-256-GCM sealing with associated data that binds each ciphertext to where it belongs.

A sealed value is ``version byte || 12-byte random nonce || ciphertext+tag``. The associated data is an unambiguous
length-prefixed encoding of the format version and the context parts (tenant, session, namespace, record key), so a
value copied to another record, session or tenant fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wagate.errors import CryptoError

FORMAT_VERSION = 1
NONCE_SIZE = 12
KEY_SIZE = 32
_HEADER = bytes([FORMAT_VERSION])


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_SIZE)


def associated_data(purpose: str, *parts: str) -> bytes:
    """Encode (format version, purpose, parts...) so that no two different tuples share an encoding."""
    out = bytearray(b"wagate")
    out.append(FORMAT_VERSION)
    for part in (purpose, *parts):
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "big")
        out += raw
    return bytes(out)


def record_aad(tenant: str, session: str, namespace: str, key: str) -> bytes:
    """Associated data of one auth-state record."""
    return associated_data("record", tenant, session, namespace, key)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, bound to ``aad``; a fresh nonce every call."""
    nonce = os.urandom(NONCE_SIZE)
    return _HEADER + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt a value made by :func:`seal`; raises :class:`CryptoError` on any mismatch."""
    if len(sealed) < 1 + NONCE_SIZE + 16 or sealed[0] != FORMAT_VERSION:
        raise CryptoError("sealed value has an unknown format")
    nonce = sealed[1 : 1 + NONCE_SIZE]
    try:
        return AESGCM(key).decrypt(nonce, sealed[1 + NONCE_SIZE :], aad)
    except InvalidTag:
        raise CryptoError("sealed value failed authentication (wrong key, tampered, or moved)") from None

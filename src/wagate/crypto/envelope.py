"""AES-256-GCM sealing with associated data that binds each ciphertext to where it belongs.

A sealed value is ``version byte || 12-byte random nonce || ciphertext+tag``. The associated data is an unambiguous
length-prefixed encoding of the format version and the context parts (tenant, session, namespace, record key), so a
value copied to another record, session or tenant fails to open.
"""

from __future__ import annotations

import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wagate.crypto.entropy import public_random
from wagate.errors import CryptoError

__all__ = [
    "FORMAT_VERSION",
    "KEY_SIZE",
    "NONCE_SIZE",
    "associated_data",
    "forget",
    "new_key",
    "open_sealed",
    "record_aad",
    "seal",
]

FORMAT_VERSION = 1
NONCE_SIZE = 12
KEY_SIZE = 32
_HEADER = bytes([FORMAT_VERSION])


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_SIZE)


def associated_data(purpose: str, *parts: str) -> bytes:
    """Encode (format version, purpose, parts...) so that no two different tuples share an encoding."""
    if not parts:
        return _prefix((purpose,))
    *head, last = parts
    return _prefix((purpose, *head)) + _encoded(last)


def _encoded(part: str) -> bytes:
    raw = part.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


@functools.lru_cache(maxsize=65536)
def _prefix(parts: tuple[str, ...]) -> bytes:
    """The encoding of all but the last part, the same for a session's every message, event or record: kept."""
    return b"wagate" + bytes([FORMAT_VERSION]) + b"".join(_encoded(part) for part in parts)


def record_aad(tenant: str, session: str, namespace: str, key: str) -> bytes:
    """Associated data of one auth-state record."""
    return associated_data("record", tenant, session, namespace, key)


# Ciphers by key: setting one up costs more than sealing a small value with it, and every received message seals
# with its session's key. Bounded; emptied when full (then rebuilt as keys are used again).
_CIPHERS: dict[bytes, AESGCM] = {}
_MAX_CIPHERS = 16384


def _cipher(key: bytes) -> AESGCM:
    cipher = _CIPHERS.get(key)
    if cipher is None:
        if len(_CIPHERS) >= _MAX_CIPHERS:
            _CIPHERS.clear()
        cipher = _CIPHERS[key] = AESGCM(key)
    return cipher


def forget(key: bytes) -> None:
    """Drop the cipher of a key no longer in use (a deleted session's data key)."""
    _CIPHERS.pop(key, None)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, bound to ``aad``; a fresh nonce every call."""
    nonce = public_random(NONCE_SIZE)
    return _HEADER + nonce + _cipher(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt a value made by :func:`seal`; raises :class:`CryptoError` on any mismatch."""
    if len(sealed) < 1 + NONCE_SIZE + 16 or sealed[0] != FORMAT_VERSION:
        raise CryptoError("sealed value has an unknown format")
    nonce = sealed[1 : 1 + NONCE_SIZE]
    try:
        return _cipher(key).decrypt(nonce, sealed[1 + NONCE_SIZE :], aad)
    except InvalidTag:
        raise CryptoError("sealed value failed authentication (wrong key, tampered, or moved)") from None

"""API keys: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["API_KEY_PREFIX", "DISPLAY_PREFIX_LEN", "display_prefix", "hash_api_key", "new_api_key", "same_key"]

API_KEY_PREFIX = "wag_"
DISPLAY_PREFIX_LEN = 12


def new_api_key() -> str:
    """A new API key with 256 bits of randomness."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """SHA-256 is enough for keys of 256 random bits; the hash is what the store looks up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LEN]


def same_key(given: str, expected: str) -> bool:
    return hmac.compare_digest(hash_api_key(given), hash_api_key(expected))

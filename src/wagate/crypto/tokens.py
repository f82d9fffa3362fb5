"""API keys: random, shown once, stored only as a hash; webhook signing secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = [
    "API_KEY_PREFIX",
    "DISPLAY_PREFIX_LEN",
    "WEBHOOK_SECRET_PREFIX",
    "display_prefix",
    "hash_api_key",
    "new_api_key",
    "new_webhook_secret",
    "same_key",
]

API_KEY_PREFIX = "wag_"
DISPLAY_PREFIX_LEN = 12
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


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


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 256 random bits in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()

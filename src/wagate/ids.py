"""Typed identifiers and their generation.

Ids are opaque strings: a short prefix naming the kind, then a ULID, so they sort by creation time and an id of one
kind is recognisable in logs and never passed as another (``NewType`` keeps mypy honest about that).
"""

from __future__ import annotations

import threading
import time
from typing import NewType

from ulid import ULID

from wagate.crypto.entropy import public_random

__all__ = [
    "API_KEY_ID_PATTERN",
    "BACKUP_ID_PATTERN",
    "EVENT_ID_PATTERN",
    "TENANT_ID_PATTERN",
    "ULID_PATTERN",
    "WEBHOOK_ID_PATTERN",
    "ApiKeyId",
    "BackupId",
    "EventId",
    "SessionId",
    "TenantId",
    "WebhookId",
    "encode_ulid",
    "id_pattern",
    "new_api_key_id",
    "new_backup_id",
    "new_event_id",
    "new_session_id",
    "new_tenant_id",
    "new_webhook_id",
]

TenantId = NewType("TenantId", str)
SessionId = NewType("SessionId", str)
ApiKeyId = NewType("ApiKeyId", str)
BackupId = NewType("BackupId", str)
EventId = NewType("EventId", str)
WebhookId = NewType("WebhookId", str)


# A ULID as these ids spell it: 26 lower-case Crockford base32 characters, the first at most 7 (128 bits).
ULID_PATTERN = "[0-7][0-9a-hjkmnp-tv-z]{25}"


def id_pattern(prefix: str) -> str:
    """The whole-string pattern of the ids made with ``prefix``, as the API's document gives it."""
    return f"^{prefix}_{ULID_PATTERN}$"


TENANT_ID_PATTERN = id_pattern("ten")
API_KEY_ID_PATTERN = id_pattern("key")
BACKUP_ID_PATTERN = id_pattern("bak")
WEBHOOK_ID_PATTERN = id_pattern("whk")
EVENT_ID_PATTERN = id_pattern("evt")


def _new(prefix: str) -> str:
    return f"{prefix}_{str(ULID()).lower()}"


def new_tenant_id() -> TenantId:
    return TenantId(_new("ten"))


def new_session_id() -> SessionId:
    return SessionId(_new("ses"))


def new_api_key_id() -> ApiKeyId:
    return ApiKeyId(_new("key"))


def new_backup_id() -> BackupId:
    return BackupId(_new("bak"))


def new_webhook_id() -> WebhookId:
    return WebhookId(_new("whk"))


# Crockford's base32 as ULIDs spell it (lower-case here), two characters per 10 bits.
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))


def encode_ulid(value: int) -> str:
    """The 26-character ULID text of a 128-bit value (two leading zero bits, then 5 bits a character), lower-case;
    ten bits at a time, about a seventh of the cost of python-ulid's encoder, which every event used to pay."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


class _MonotonicUlid:
    """ULIDs that never go backwards within this process: inside one millisecond the random part counts up, so
    event ids sort in the order the events were made (ULID's monotonic variant)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = 0

    def next(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                now_ms = self._last_ms
                self._last_random += 1
            else:
                self._last_ms = now_ms
                self._last_random = int.from_bytes(public_random(10), "big") >> 1  # room to count up
            return encode_ulid(now_ms << 80 | self._last_random)


_event_ulids = _MonotonicUlid()


def new_event_id() -> EventId:
    return EventId("evt_" + _event_ulids.next())

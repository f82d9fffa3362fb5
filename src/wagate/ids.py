"""Typed identifiers and their generation.

Ids are opaque strings: a short prefix naming the kind, then a ULID, so they sort by creation time and an id of one
kind is recognisable in logs and never passed as another (``NewType`` keeps mypy honest about that).
"""

from __future__ import annotations

from typing import NewType

from ulid import ULID

TenantId = NewType("TenantId", str)
SessionId = NewType("SessionId", str)
ApiKeyId = NewType("ApiKeyId", str)
BackupId = NewType("BackupId", str)


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

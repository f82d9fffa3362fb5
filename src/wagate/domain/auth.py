"""Auth-state records as the store keeps them: sealed, versioned, written in fenced batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wagate.ids import SessionId, TenantId

__all__ = ["AuthWrite", "SealedRecord"]


@dataclass(frozen=True, slots=True)
class SealedRecord:
    namespace: str
    key: str
    version: int
    value: bytes


@dataclass(frozen=True, slots=True)
class AuthWrite:
    """One session's write of auth records, as ``AuthRecordStore.write`` takes it."""

    tenant_id: TenantId
    session_id: SessionId
    owner: str
    epoch: int
    upserts: Mapping[tuple[str, str], bytes]
    deletes: Sequence[tuple[str, str]] = ()
    replace_all: bool = False

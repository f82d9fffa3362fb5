"""A session's sealed backup, as listed."""

from __future__ import annotations

from dataclasses import dataclass

from wagate.ids import BackupId, SessionId, TenantId

__all__ = ["Backup"]


@dataclass(frozen=True, slots=True)
class Backup:
    """A sealed copy of a session's auth state (a bundle: opens with the keyring alone, not the data key)."""

    id: BackupId
    tenant_id: TenantId
    session_id: SessionId
    created_at: float
    reason: str
    records: int
    size: int

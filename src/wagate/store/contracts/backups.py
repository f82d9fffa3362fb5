"""Sealed backups of a session's auth state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from wagate.domain.backups import Backup
from wagate.ids import BackupId, SessionId, TenantId

__all__ = ["BackupStore"]


class BackupStore(ABC):
    @abstractmethod
    async def add(
        self, tenant_id: TenantId, session_id: SessionId, *, reason: str, records: int, payload: bytes, keep: int
    ) -> Backup:
        """Keep a backup, and only the newest ``keep`` of the session's, in one transaction."""

    @abstractmethod
    async def list_backups(self, tenant_id: TenantId, session_id: SessionId) -> list[Backup]:
        """Newest first."""

    @abstractmethod
    async def payload(self, tenant_id: TenantId, session_id: SessionId, backup_id: BackupId) -> bytes | None: ...

    @abstractmethod
    async def reseal_all_tenants(self, reseal: Callable[[bytes], bytes | None]) -> int:
        """Replace each payload that ``reseal`` returns a new one for (key rotation); how many."""

"""Sessions: what tenants want of them, what they are, and their history."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from wagate.domain.events import Event
from wagate.domain.messages import (
    Append,
    InboundMessage,
)
from wagate.domain.sessions import (
    Desired,
    HistoryEntry,
    NewSession,
    Quotas,
    Session,
    StatusChange,
)
from wagate.errors import LeaseLost
from wagate.ids import SessionId, TenantId

__all__ = ["SessionStore"]


class SessionStore(ABC):
    @abstractmethod
    async def create(self, new: NewSession, *, quotas: Quotas, actor: str) -> Session:
        """Insert a session and its first history entry, enforcing quotas atomically.

        Raises ``AlreadyExists`` for a taken name, ``QuotaExceeded`` above a quota.
        """

    @abstractmethod
    async def get(self, tenant_id: TenantId, name: str) -> Session | None: ...

    @abstractmethod
    async def get_by_id(self, tenant_id: TenantId, session_id: SessionId) -> Session | None: ...

    @abstractmethod
    async def existing_all_tenants(self, session_ids: Sequence[str]) -> set[str]:
        """Which of these session ids still exist, whatever their tenant (a sweep of local leftovers)."""

    @abstractmethod
    async def list_sessions(self, tenant_id: TenantId) -> list[Session]: ...

    @abstractmethod
    async def count(self, tenant_id: TenantId | None) -> int:
        """Sessions of one tenant, or of the installation when ``tenant_id`` is None."""

    @abstractmethod
    async def count_by_status_all_tenants(self) -> dict[tuple[str, str], int]:
        """System-wide, for the server status: sessions by (status, desired)."""

    @abstractmethod
    async def set_desired(
        self, tenant_id: TenantId, name: str, desired: Desired, *, actor: str, restart: bool = False
    ) -> Session | None:
        """Record what the tenant wants; ``restart`` bumps the generation so a running session restarts."""

    @abstractmethod
    async def update_config(
        self, tenant_id: TenantId, name: str, config: dict[str, Any], *, actor: str
    ) -> Session | None:
        """Replace the config and bump the generation."""

    async def set_status_many(
        self, changes: Sequence[StatusChange], events: Sequence[Event] = (), inbound: Sequence[InboundMessage] = ()
    ) -> list[Session | None]:
        """Record observed statuses with their history entries and ``session.status`` events, plus ``events``, plus
        the ``inbound`` messages not stored before (with their events), in one transaction, in order.

        Each change is fenced: it applies only while (owner, epoch) holds the session's lease; the answer is None
        for a change that did not apply (lease lost, session gone). A change's ``events`` commit only with it.
        """
        applied, _ = await self.commit(changes, [Append(events, inbound)])
        return applied

    @abstractmethod
    async def commit(
        self, changes: Sequence[StatusChange], appends: Sequence[Append]
    ) -> tuple[list[Session | None], list[LeaseLost | None]]:
        """The unit of work of sessions' reports (the SQL store's ``SessionCommit``): ``set_status_many`` for many
        sessions' writes at once (the group commit of the supervisor), the changes as there, and each append whole
        or not at all (its auth records, messages, events and their outbox rows), all in one transaction. An append
        with an ``auth`` write is fenced by it: ``LeaseLost`` in its place when the write's (owner, epoch) no longer
        holds the lease, and nothing of it is written."""

    @abstractmethod
    async def delete(self, tenant_id: TenantId, name: str) -> bool:
        """Delete a session with its history, keys, auth records, lease and backups."""

    @abstractmethod
    async def history(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, before: int | None = None
    ) -> list[HistoryEntry]:
        """Newest first; ``before`` pages back from an entry id."""

    @abstractmethod
    async def list_to_reconcile_all_tenants(self) -> list[Session]:
        """System-wide: sessions that should run and have not failed, and sessions that should stop but have not."""

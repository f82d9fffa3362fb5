"""The event history, and the webhook outbox rows committed with it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from wagate.domain.events import CommitListener, Event
from wagate.ids import EventId, SessionId, TenantId

__all__ = ["EventStore"]


class EventStore(ABC):
    """The event history and the webhook outbox it feeds (rows made in the transaction of the change)."""

    @property
    @abstractmethod
    def listeners(self) -> list[CommitListener]:
        """Called after each commit with what it committed (the bus, the webhook dispatcher)."""

    @abstractmethod
    def set_claimer(self, owner: str | None, ttl: float) -> None:
        """Deliveries queued from now on are claimed for ``owner`` (this process's dispatcher) in their own
        transaction, so it sends them at once; None leaves them for any worker's poll."""

    @abstractmethod
    def set_environment(self, environment: dict[str, Any]) -> None:
        """WAHA's ``environment`` of this process, stamped on every event it commits from now on."""

    @abstractmethod
    async def events_by_seq(self, seqs: Sequence[int]) -> list[Event]:
        """The events with these sequence numbers (announced ones), in sequence order; any tenant."""

    @abstractmethod
    async def append(self, events: Sequence[Event]) -> None:
        """Commit events that report no state change of their own (messages, QR codes)."""

    @abstractmethod
    async def list_events(
        self,
        tenant_id: TenantId,
        *,
        session_id: SessionId | None = None,
        types: Sequence[str] | None = None,
        after: EventId | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Oldest first, after an event id (a cursor)."""

    @abstractmethod
    async def reseal_all_tenants(self, active_key: str) -> int:
        """Seal again under the active key every event sealed under another (key rotation); how many."""

    @abstractmethod
    async def prune_all_tenants(self, before: float, chunk: int = 5000) -> int:
        """System-wide: delete events older than ``before`` that no pending delivery needs, and finished
        deliveries of that age, at most ``chunk`` rows per transaction. Returns how many events went."""

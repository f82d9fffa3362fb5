"""Messages both ways and the outbound queue."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence

from wagate.domain.events import Event
from wagate.domain.messages import (
    Message,
    MessageStatus,
    NewOutbound,
    StatusUpdate,
)
from wagate.ids import SessionId, TenantId

__all__ = ["MessageStore"]


class MessageStore(ABC):
    """Each session's messages: those received, and those queued to send as they move on to sent, delivered, read."""

    @abstractmethod
    async def enqueue(self, new: NewOutbound, *, max_queued: int) -> tuple[Message, bool]:
        """Queue an outbound message; (message, False) when the tenant's idempotency key was used before with the
        same request. Raises ``QueueFull`` when the session has ``max_queued`` messages waiting,
        ``IdempotencyConflict`` when the key was used for another request and ``AlreadyExists`` when the session has
        a message of this id."""

    @abstractmethod
    async def get(self, tenant_id: TenantId, session_id: SessionId, message_id: str) -> Message | None: ...

    @abstractmethod
    async def get_many(self, tenant_id: TenantId, session_id: SessionId, ids: Collection[str]) -> dict[str, Message]:
        """The session's messages of these ids, by id (an id not stored is left out)."""

    @abstractmethod
    async def list_messages(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        chat_id: str | None,
        sender: str | None = None,
        since: float | None = None,
        until: float | None = None,
        from_me: bool | None = None,
        statuses: Collection[MessageStatus] | None = None,
        cursor: tuple[float, int] | None = None,
        offset: int = 0,
        newest_first: bool = True,
        limit: int = 100,
    ) -> list[Message]:
        """By time (``timestamp``, then ``seq``, the order of arrival, between messages of the same time), newest
        first unless ``newest_first`` is false. ``since`` and ``until`` are inclusive; ``statuses`` keeps those
        only. A page starts after ``offset`` messages, or after ``cursor``: (timestamp, seq) of the previous page's
        last message."""

    @abstractmethod
    async def queued(self, tenant_id: TenantId, session_id: SessionId, limit: int) -> list[Message]:
        """Outbound messages waiting (pending or sending), oldest first."""

    @abstractmethod
    async def media(self, tenant_id: TenantId, session_id: SessionId, message_id: str) -> bytes | None:
        """The sealed media of a queued message."""

    @abstractmethod
    async def mark_sending(
        self, tenant_id: TenantId, session_id: SessionId, ids: Sequence[str], *, owner: str, epoch: int
    ) -> list[str]:
        """pending -> sending, one more attempt each: committed before the messages go to the engine, and only while
        ``(owner, epoch)`` holds the session's lease. The ids it moved: only those may be sent (a message another
        sender moved first is left out). Raises ``LeaseLost`` when the lease has moved on."""

    @abstractmethod
    async def update_status(self, updates: Sequence[StatusUpdate], *, events: Sequence[Event] = ()) -> list[Message]:
        """Apply the updates that move a message forward, with a ``message.ack`` event for each one a tenant
        hears of, and ``events`` (what the sending reports: ``message.any``), in one transaction; the messages
        changed. Media of a message that left the queue is dropped."""

    @abstractmethod
    async def fail_queued(self, tenant_id: TenantId, session_id: SessionId, session_name: str, error: str) -> int:
        """Fail every queued message of a session (logged out, wiped): they must not go out from another link."""

    @abstractmethod
    async def prune_all_tenants(self, now: float, chunk: int = 5000) -> int:
        """System-wide: delete messages older than their tenant's retention (never queued ones), at most ``chunk``
        per transaction; how many."""

    @abstractmethod
    async def queued_sessions_all_tenants(self) -> set[SessionId]:
        """System-wide: the sessions with outbound messages waiting (for a worker to wake their senders)."""

"""The directory of each session: its chats (with their counters), contacts and groups."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from wagate.domain.messages import Chat, Contact, Group
from wagate.ids import SessionId, TenantId

__all__ = ["DirectoryStore"]


class DirectoryStore(ABC):
    """What a session knows of the people and groups it talks to. Chats are kept by the messages themselves (a
    received message counts into its chat in the transaction that stores it); contacts and groups come from the
    engine's reports."""

    @abstractmethod
    async def put_contacts(self, tenant_id: TenantId, session_id: SessionId, contacts: Sequence[Contact]) -> None: ...

    @abstractmethod
    async def put_groups(self, tenant_id: TenantId, session_id: SessionId, groups: Sequence[Group]) -> None: ...

    @abstractmethod
    async def list_chats(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: tuple[float, str] | None = None
    ) -> list[Chat]:
        """Most recent first; ``cursor`` is (last_message_at, id) of the previous page's last chat."""

    @abstractmethod
    async def list_contacts(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: str | None = None
    ) -> list[Contact]:
        """By id; ``cursor`` is the previous page's last id."""

    @abstractmethod
    async def list_groups(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: str | None = None
    ) -> list[Group]: ...

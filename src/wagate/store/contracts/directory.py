"""The directory of each session: its chats (with their counters), contacts and groups."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from enum import StrEnum

from wagate.domain.messages import Chat, Contact, Group
from wagate.ids import SessionId, TenantId

__all__ = ["ChatOrder", "DirectoryStore", "NameOrder"]


class ChatOrder(StrEnum):
    """What chats are sorted by: the last message's time, the id, or the name shown (null names last)."""

    RECENT = "recent"
    ID = "id"
    NAME = "name"


class NameOrder(StrEnum):
    """What contacts and groups are sorted by: the id, or the name (a group's subject; null names last)."""

    ID = "id"
    NAME = "name"


class DirectoryStore(ABC):
    """What a session knows of the people and groups it talks to. Chats are kept by the messages themselves (a
    received message counts into its chat in the transaction that stores it); contacts and groups come from the
    engine's reports.

    Every list takes ``limit`` and ``offset``; those sorted by a unique key (a chat's time and id, an id) also take
    a keyset ``cursor``, the key of the previous page's last item, for pages that cost the same however deep."""

    @abstractmethod
    async def put_contacts(self, tenant_id: TenantId, session_id: SessionId, contacts: Sequence[Contact]) -> None: ...

    @abstractmethod
    async def put_groups(self, tenant_id: TenantId, session_id: SessionId, groups: Sequence[Group]) -> None: ...

    @abstractmethod
    async def list_chats(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        limit: int,
        offset: int = 0,
        order: ChatOrder = ChatOrder.RECENT,
        descending: bool = True,
        cursor: tuple[float, str] | str | None = None,
        ids: Collection[str] | None = None,
    ) -> list[Chat]:
        """Most recent first by default; ``ids`` keeps those chats only. ``cursor`` is (last_message_at, id) of the
        previous page's last chat by ``RECENT``, its id by ``ID``; ``NAME`` has none."""

    @abstractmethod
    async def list_contacts(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        limit: int,
        offset: int = 0,
        order: NameOrder = NameOrder.ID,
        descending: bool = False,
        cursor: str | None = None,
    ) -> list[Contact]:
        """By id by default; ``cursor`` is the previous page's last id (by ``ID`` only)."""

    @abstractmethod
    async def get_contact(self, tenant_id: TenantId, session_id: SessionId, contact_id: str) -> Contact | None: ...

    @abstractmethod
    async def list_groups(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        limit: int,
        offset: int = 0,
        order: NameOrder = NameOrder.ID,
        descending: bool = False,
        cursor: str | None = None,
    ) -> list[Group]:
        """By id by default, ``NAME`` sorts by subject; ``cursor`` is the previous page's last id (by ``ID`` only)."""

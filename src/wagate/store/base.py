"""Store interfaces, one small ABC per concern (as whatsmeow splits its store).

Every call that touches a tenant's data takes the tenant id, so no query can forget it. The few system-wide calls
(the supervisor's reconcile list, key rotation) say so in their names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from wagate.errors import StoreUnavailable
from wagate.store.contracts.accounts import ApiKeyStore, TenantStore, TicketStore
from wagate.store.contracts.auth import AuthRecordStore
from wagate.store.contracts.backups import BackupStore
from wagate.store.contracts.directory import DirectoryStore
from wagate.store.contracts.events import EventStore
from wagate.store.contracts.leases import LeaseStore
from wagate.store.contracts.messages import MessageStore
from wagate.store.contracts.peers import PeerChannel
from wagate.store.contracts.sessions import SessionStore
from wagate.store.contracts.webhooks import OutboxStore, WebhookStore
from wagate.store.contracts.workers import WorkerStore

__all__ = ["Store"]


class Store(ABC):
    """The store, one part per concern, plus its lifecycle."""

    backend: str
    tenants: TenantStore
    api_keys: ApiKeyStore
    tickets: TicketStore
    sessions: SessionStore
    leases: LeaseStore
    workers: WorkerStore
    auth: AuthRecordStore
    events: EventStore
    peers: PeerChannel
    webhooks: WebhookStore
    outbox: OutboxStore
    backups: BackupStore
    messages: MessageStore
    directory: DirectoryStore

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> float:
        """Round-trip time in seconds; raises ``StoreUnavailable`` when the database cannot answer."""

    @abstractmethod
    async def write_refusal(self) -> StoreUnavailable | None:
        """None while writes go through; otherwise why one was refused (read-only, disk full). Once a write was
        refused, each call first tries a probe write (one that needs some room), and only its success clears the
        refusal: a small write that finds room is no sign that the database takes a batch of messages again."""

    @abstractmethod
    def set_observer(self, observe: Callable[[str, float], None] | None) -> None:
        """Called with (``read`` or ``write``, seconds) after each store operation: for metrics."""

    @abstractmethod
    async def is_migrated(self) -> bool:
        """Every known migration has been applied."""

"""Store interfaces, one small ABC per concern (as whatsmeow splits its store).

Every call that touches a tenant's data takes the tenant id, so no query can forget it. The few system-wide calls
(the supervisor's reconcile list, key rotation) say so in their names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wagate.crypto.keyring import WrappedKey
from wagate.domain.sessions import Desired, HistoryEntry, Quotas, Reason, Session, Status
from wagate.domain.tenants import ApiKey, Role, Tenant
from wagate.ids import ApiKeyId, SessionId, TenantId


class TenantStore(ABC):
    @abstractmethod
    async def create(self, name: str, *, contact_email: str | None, max_sessions: int | None) -> Tenant:
        """Raises ``AlreadyExists`` when the name is taken."""

    @abstractmethod
    async def get(self, tenant_id: TenantId) -> Tenant | None: ...

    @abstractmethod
    async def list_all(self) -> list[Tenant]: ...

    @abstractmethod
    async def delete(self, tenant_id: TenantId) -> bool:
        """Delete a tenant with no sessions, and its keys. False when unknown."""


class ApiKeyStore(ABC):
    @abstractmethod
    async def create(
        self, *, tenant_id: TenantId | None, role: Role, name: str, key_hash: str, prefix: str
    ) -> ApiKey: ...

    @abstractmethod
    async def find_active(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash."""

    @abstractmethod
    async def list_keys(self, tenant_id: TenantId | None) -> list[ApiKey]:
        """Keys of one tenant, or every key (admin keys included) when ``tenant_id`` is None."""

    @abstractmethod
    async def revoke(self, key_id: ApiKeyId, *, tenant_id: TenantId | None) -> bool:
        """Revoke a key; restricted to one tenant's keys unless ``tenant_id`` is None."""

    @abstractmethod
    async def has_admin(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An observed status to record, by the lease holder (owner, epoch)."""

    tenant_id: TenantId
    session_id: SessionId
    owner: str
    epoch: int
    status: Status
    reason: Reason | None = None
    actor: str = "supervisor"
    me: dict[str, Any] | None = None
    clear_me: bool = False
    note: str | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NewSession:
    tenant_id: TenantId
    name: str
    engine: str
    config: dict[str, Any]
    desired: Desired


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
    async def list_sessions(self, tenant_id: TenantId) -> list[Session]: ...

    @abstractmethod
    async def count(self, tenant_id: TenantId | None) -> int:
        """Sessions of one tenant, or of the installation when ``tenant_id`` is None."""

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

    @abstractmethod
    async def set_status_many(self, changes: Sequence[StatusChange]) -> list[Session | None]:
        """Record observed statuses with their history entries, in one transaction, in order.

        Each change is fenced: it applies only while (owner, epoch) holds the session's lease; the answer is None
        for a change that did not apply (lease lost, session gone).
        """

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


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: SessionId
    owner: str | None
    epoch: int
    expires_at: float


class LeaseStore(ABC):
    """One lease row per session (made with the session): (owner, epoch, expiry)."""

    async def acquire(
        self, session_id: SessionId, owner: str, ttl: float, *, takeover: str | None = None
    ) -> Lease | None:
        """Take the lease if it is free, expired or already ours; a new owner gets a higher epoch. None if held."""
        return (await self.acquire_many([session_id], owner, ttl, takeover=takeover)).get(session_id)

    @abstractmethod
    async def acquire_many(
        self, session_ids: Sequence[SessionId], owner: str, ttl: float, *, takeover: str | None = None
    ) -> dict[SessionId, Lease]:
        """Take every lease that is free, expired or ours, in one transaction; the answer holds those taken.

        A live lease whose owner starts with ``takeover`` (an earlier run of this same worker, now gone) counts as
        free. Our own live lease keeps its epoch; any other taken lease gets a higher one, which fences every
        write still in flight under the old one.
        """

    @abstractmethod
    async def renew(self, session_id: SessionId, owner: str, epoch: int, ttl: float) -> bool: ...

    @abstractmethod
    async def renew_all(self, owner: str, ttl: float) -> set[SessionId]:
        """Extend every lease ``owner`` holds; the answer is the set still held."""

    @abstractmethod
    async def release(self, session_id: SessionId, owner: str, epoch: int) -> None: ...

    @abstractmethod
    async def release_all(self, owner: str) -> int: ...

    @abstractmethod
    async def get(self, session_id: SessionId) -> Lease | None: ...


@dataclass(frozen=True, slots=True)
class SealedRecord:
    namespace: str
    key: str
    version: int
    value: bytes


class AuthRecordStore(ABC):
    """Sealed auth-state records and the wrapped data key of each session. Writes are fenced by lease epoch."""

    @abstractmethod
    async def get_data_key(self, tenant_id: TenantId, session_id: SessionId) -> WrappedKey | None: ...

    @abstractmethod
    async def put_data_key_if_absent(
        self, tenant_id: TenantId, session_id: SessionId, wrapped: WrappedKey
    ) -> WrappedKey:
        """Store the wrapped key unless one exists; returns the stored one (so racing creators agree)."""

    @abstractmethod
    async def rewrap_all_data_keys_all_tenants(
        self, rewrap: Callable[[TenantId, SessionId, WrappedKey], WrappedKey | None]
    ) -> int:
        """System-wide: replace each wrapped key by ``rewrap``'s answer (None leaves it); returns how many changed."""

    @abstractmethod
    async def read(
        self, tenant_id: TenantId, session_id: SessionId, namespace: str, keys: Sequence[str]
    ) -> dict[str, SealedRecord]: ...

    @abstractmethod
    async def read_all(self, tenant_id: TenantId, session_id: SessionId) -> list[SealedRecord]: ...

    @abstractmethod
    async def bulk_load(
        self, session_ids: Sequence[SessionId], namespace: str
    ) -> tuple[dict[SessionId, WrappedKey], dict[SessionId, list[SealedRecord]]]:
        """System-wide, for restoring many sessions at once: their wrapped data keys, and their records in one
        namespace, in a few queries."""

    @abstractmethod
    async def write(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        owner: str,
        epoch: int,
        upserts: Mapping[tuple[str, str], bytes],
        deletes: Sequence[tuple[str, str]] = (),
        replace_all: bool = False,
    ) -> None:
        """One atomic transaction; raises ``LeaseLost`` when (owner, epoch) no longer holds the session's lease.

        ``replace_all`` deletes every other record of the session first (an import).
        """


class AuthState(Protocol):
    """A session's credentials as the engine sees them: plaintext in, sealed at rest."""

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, bytes]: ...

    async def put_many(self, records: Mapping[tuple[str, str], bytes]) -> None: ...

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> None: ...

    async def export(self) -> bytes: ...

    async def import_bundle(self, bundle: bytes) -> int: ...


class Store(ABC):
    """The store, one part per concern, plus its lifecycle."""

    backend: str
    tenants: TenantStore
    api_keys: ApiKeyStore
    sessions: SessionStore
    leases: LeaseStore
    auth: AuthRecordStore

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> float:
        """Round-trip time in seconds; raises ``StoreUnavailable`` when the database cannot answer."""

    @abstractmethod
    async def is_migrated(self) -> bool:
        """Every known migration has been applied."""

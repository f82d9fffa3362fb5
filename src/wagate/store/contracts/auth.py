"""Auth-state records (sealed, fenced by the lease) and the data keys that seal them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from wagate.crypto.keyring import WrappedKey
from wagate.domain.auth import AuthWrite, SealedRecord
from wagate.errors import LeaseLost
from wagate.ids import SessionId, TenantId

__all__ = ["AuthRecordStore", "AuthState", "Sealer"]


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
    async def replace_data_key(
        self, tenant_id: TenantId, session_id: SessionId, old: WrappedKey, new: WrappedKey
    ) -> bool:
        """Replace the session's wrapped key by ``new`` only while it is still ``old`` (compare-and-swap: a key
        another process replaced meanwhile stays); True when it was replaced."""

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

    async def write_many(self, writes: Sequence[AuthWrite]) -> list[LeaseLost | None]:
        """Several sessions' writes; each fenced on its own (``LeaseLost`` in its place when refused). A store that
        can commits them in one transaction (group commit); this default commits them one by one."""
        results: list[LeaseLost | None] = []
        for w in writes:
            try:
                await self.write(
                    w.tenant_id,
                    w.session_id,
                    owner=w.owner,
                    epoch=w.epoch,
                    upserts=w.upserts,
                    deletes=w.deletes,
                    replace_all=w.replace_all,
                )
                results.append(None)
            except LeaseLost as exc:
                results.append(exc)
        return results


class AuthState(Protocol):
    """A session's credentials as the engine sees them: plaintext in, sealed at rest."""

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The records that exist; ``DamagedRecord`` (with the readable ones) when some no longer open."""
        ...

    async def put_many(
        self, records: Mapping[tuple[str, str], bytes], *, deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Write ``records`` and delete ``deletes`` (namespace, key) together, atomically."""
        ...

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> None: ...

    async def export(self) -> bytes: ...

    async def import_bundle(self, bundle: bytes) -> int: ...


class Sealer(Protocol):
    """Seals what the store keeps for tenants (event payloads, webhook secrets), bound to where it belongs."""

    def seal(self, plaintext: bytes, purpose: str, *parts: str) -> tuple[str, bytes]:
        """(key id, sealed bytes)."""
        ...

    def open(self, key_id: str, sealed: bytes, purpose: str, *parts: str) -> bytes: ...

"""The vault: a session's auth state, sealed record by record with the session's data key.

``Vaults`` hands out one :class:`Vault` per (session, lease owner, epoch) and caches unwrapped data keys, which never
change for a session (KEK rotation rewraps them, it does not replace them). Export/import move the whole state as one
bundle sealed under a KEK, so it opens on any installation configured with the same keys.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from wagate.clock import Clock, system_clock
from wagate.crypto.envelope import associated_data, new_key, open_sealed, record_aad, seal
from wagate.crypto.envelope import forget as forget_cipher
from wagate.crypto.keyring import Keyring, WrappedKey
from wagate.domain.auth import AuthWrite, SealedRecord
from wagate.errors import CryptoError, DamagedKey, DamagedRecord, UnknownKeyError
from wagate.ids import SessionId, TenantId
from wagate.store.combiner import WriteCombiner
from wagate.store.contracts.auth import AuthRecordStore

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_MAGIC",
    "BundleHeader",
    "Vault",
    "Vaults",
    "open_bundle",
    "reseal_bundle",
    "seal_bundle",
]

log = logging.getLogger("wagate.vault")

BUNDLE_MAGIC = b"WAGATE-AUTH-BUNDLE\x01"
BUNDLE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class BundleHeader:
    """What a bundle says of itself, authenticated with it. ``device``: the linked device the state belongs to (the
    session's ``me`` id, which names the device), when known; it tells a backup of this link from an older one."""

    kek_id: str
    tenant_id: str
    session_id: str
    created_at: float
    records: int
    device: str | None = None

    def encode(self) -> bytes:
        fields: dict[str, object] = {
            "format": BUNDLE_FORMAT,
            "kek": self.kek_id,
            "tenant": self.tenant_id,
            "session": self.session_id,
            "created_at": self.created_at,
            "records": self.records,
        }
        if self.device is not None:
            fields["device"] = self.device
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def seal_bundle(keyring: Keyring, header: BundleHeader, records: Sequence[tuple[str, str, bytes]]) -> bytes:
    """Seal records (namespace, key, plaintext) under the active KEK; the header is authenticated too."""
    encoded_header = header.encode()
    payload = json.dumps([[ns, key, base64.b64encode(value).decode()] for ns, key, value in records]).encode()
    sealed = keyring.seal_with(header.kek_id, payload, associated_data("bundle", encoded_header.decode()))
    return BUNDLE_MAGIC + len(encoded_header).to_bytes(4, "big") + encoded_header + sealed


def open_bundle(keyring: Keyring, bundle: bytes) -> tuple[BundleHeader, list[tuple[str, str, bytes]]]:
    """Verify and open a bundle; raises ``CryptoError`` when it is not one, was altered, or its key is unknown."""
    if not bundle.startswith(BUNDLE_MAGIC) or len(bundle) < len(BUNDLE_MAGIC) + 4:
        raise CryptoError("not a wagate auth bundle")
    offset = len(BUNDLE_MAGIC)
    size = int.from_bytes(bundle[offset : offset + 4], "big")
    encoded_header = bundle[offset + 4 : offset + 4 + size]
    try:
        fields = json.loads(encoded_header)
        header = BundleHeader(
            str(fields["kek"]),
            str(fields["tenant"]),
            str(fields["session"]),
            float(fields["created_at"]),
            int(fields["records"]),
            str(fields["device"]) if fields.get("device") is not None else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CryptoError("the bundle header is damaged") from None
    payload = keyring.open_with(
        header.kek_id, bundle[offset + 4 + size :], associated_data("bundle", encoded_header.decode())
    )
    records = [(str(ns), str(key), base64.b64decode(value)) for ns, key, value in json.loads(payload)]
    return header, records


class Vaults:
    """Opens vaults and caches data keys (32 bytes per session). The vaults' writes of records share transactions
    (``WriteCombiner``, group commit) unless ``combine`` is False: then each commits on its own."""

    def __init__(
        self, store: AuthRecordStore, keyring: Keyring, clock: Clock = system_clock, *, combine: bool = True
    ) -> None:
        self._store = store
        self.keyring = keyring
        self._clock = clock
        self._combiner = WriteCombiner(store) if combine else None
        self._keys: dict[SessionId, bytes] = {}
        # Records loaded in bulk ahead of a first read, consumed by it; any write to the session drops them.
        self._preloaded: dict[tuple[SessionId, str], dict[str, SealedRecord]] = {}

    async def preload(self, sessions: Sequence[tuple[TenantId, SessionId]], namespace: str) -> None:
        """Load the data keys of many sessions, and their records in ``namespace``, in a few queries (a restore
        of thousands of sessions then costs no per-session read before each connects)."""
        tenants = {session_id: tenant_id for tenant_id, session_id in sessions}
        wrapped, records = await self._store.bulk_load(list(tenants), namespace)
        for session_id, key in wrapped.items():
            if session_id in self._keys:
                continue
            try:
                self._keys[session_id] = self._unwrap(key, tenants[session_id], session_id)
            except CryptoError as exc:
                # One session's key must not stop the others: that session meets the error on its own path (a
                # damaged key is quarantined, a missing KEK fails it), when it first reads its state.
                log.error("session %s: its data key does not unwrap (%s); not preloaded", session_id, exc)
                del tenants[session_id]
        for session_id in tenants:
            found = records.get(session_id, [])
            self._preloaded[(session_id, namespace)] = {r.key: r for r in found}

    def take_preloaded(self, session_id: SessionId, namespace: str) -> dict[str, SealedRecord] | None:
        return self._preloaded.pop((session_id, namespace), None)

    def drop_preloaded(self, session_id: SessionId) -> None:
        for key in [k for k in self._preloaded if k[0] == session_id]:
            del self._preloaded[key]

    def open(self, tenant_id: TenantId, session_id: SessionId, *, owner: str, epoch: int) -> Vault:
        return Vault(self, tenant_id, session_id, owner=owner, epoch=epoch)

    def forget(self, session_id: SessionId) -> None:
        """Drop a deleted session's cached data key."""
        key = self._keys.pop(session_id, None)
        if key is not None:
            forget_cipher(key)
        self.drop_preloaded(session_id)

    async def data_key(self, tenant_id: TenantId, session_id: SessionId, *, create: bool) -> bytes | None:
        cached = self._keys.get(session_id)
        if cached is not None:
            return cached
        wrapped = await self._store.get_data_key(tenant_id, session_id)
        if wrapped is None:
            if not create:
                return None
            wrapped = await self._store.put_data_key_if_absent(
                tenant_id, session_id, self.keyring.wrap(new_key(), tenant_id, session_id)
            )
        key = self._unwrap(wrapped, tenant_id, session_id)
        self._keys[session_id] = key
        return key

    def _unwrap(self, wrapped: WrappedKey, tenant_id: TenantId, session_id: SessionId) -> bytes:
        """The data key; ``DamagedKey`` when its stored bytes no longer open under a configured KEK (a KEK that is
        not configured is the operator's to fix, ``UnknownKeyError``: nothing is damaged)."""
        try:
            return self.keyring.unwrap(wrapped, tenant_id, session_id)
        except UnknownKeyError:
            raise
        except CryptoError:
            raise DamagedKey() from None

    async def key_damaged(self, tenant_id: TenantId, session_id: SessionId) -> bool:
        """Whether the session's stored data key no longer unwraps (``DamagedKey``)."""
        try:
            await self.data_key(tenant_id, session_id, create=False)
        except DamagedKey:
            return True
        return False

    async def replace_damaged_key(self, tenant_id: TenantId, session_id: SessionId) -> bool:
        """Give the session a new data key when its stored one is damaged (after a wipe: nothing the old one sealed
        can be read again, and nothing new can be sealed without a key); True when it was replaced. Only the damaged
        bytes as read are replaced, so a key another worker replaced meanwhile stays."""
        if session_id in self._keys:
            return False  # it unwrapped: not damaged
        wrapped = await self._store.get_data_key(tenant_id, session_id)
        if wrapped is None:
            return False
        try:
            self._unwrap(wrapped, tenant_id, session_id)
        except DamagedKey:
            pass
        except UnknownKeyError:
            return False  # its KEK is not configured here: the operator's to fix, nothing is damaged
        else:
            return False
        fresh = self.keyring.wrap(new_key(), tenant_id, session_id)
        replaced = await self._store.replace_data_key(tenant_id, session_id, wrapped, fresh)
        if replaced:
            log.warning("session %s: its damaged data key was replaced by a new one", session_id)
        return replaced


class Vault:
    """One session's auth state (the ``AuthState`` of the engine contract), fenced by a lease epoch."""

    def __init__(self, vaults: Vaults, tenant_id: TenantId, session_id: SessionId, *, owner: str, epoch: int) -> None:
        self._vaults = vaults
        self._store = vaults._store
        self.tenant_id = tenant_id
        self.session_id = session_id
        self.owner = owner
        self.epoch = epoch

    def _aad(self, namespace: str, key: str) -> bytes:
        return record_aad(self.tenant_id, self.session_id, namespace, key)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The records of ``keys`` that exist. Raises ``DamagedRecord`` naming those that no longer open, with the
        others readable in it: one damaged record does not hide the rest."""
        preloaded = self._vaults.take_preloaded(self.session_id, namespace)
        if preloaded is not None:
            sealed = {key: preloaded[key] for key in keys if key in preloaded}
        else:
            sealed = await self._store.read(self.tenant_id, self.session_id, namespace, keys)
        if not sealed:
            return {}
        try:
            data_key = await self._data_key()
        except DamagedKey:
            raise DamagedKey([(namespace, key) for key in sealed]) from None
        opened: dict[str, bytes] = {}
        damaged: list[tuple[str, str]] = []
        for key, record in sealed.items():
            try:
                opened[key] = open_sealed(data_key, record.value, self._aad(namespace, key))
            except CryptoError:
                damaged.append((namespace, key))
        if damaged:
            raise DamagedRecord(damaged, opened)
        return opened

    async def get_all(self) -> list[tuple[str, str, bytes]]:
        """Every record as (namespace, key, plaintext), in a stable order; ``DamagedRecord`` if any does not open."""
        records, damaged = await self.get_readable()
        if damaged:
            raise DamagedRecord(damaged)
        return records

    async def get_readable(self) -> tuple[list[tuple[str, str, bytes]], list[tuple[str, str]]]:
        """Every record that opens, as ``get_all`` lists them, and the (namespace, key) of those that do not."""
        sealed = await self._store.read_all(self.tenant_id, self.session_id)
        if not sealed:
            return [], []
        try:
            data_key = await self._data_key()
        except DamagedKey:
            return [], [(record.namespace, record.key) for record in sealed]
        records: list[tuple[str, str, bytes]] = []
        damaged: list[tuple[str, str]] = []
        for record in sealed:
            try:
                records.append(
                    (
                        record.namespace,
                        record.key,
                        open_sealed(data_key, record.value, self._aad(record.namespace, record.key)),
                    )
                )
            except CryptoError:
                damaged.append((record.namespace, record.key))
        return records, damaged

    async def _data_key(self) -> bytes:
        data_key = await self._vaults.data_key(self.tenant_id, self.session_id, create=False)
        if data_key is None:
            raise CryptoError(f"session {self.session_id} has records but no data key")
        return data_key

    async def put_many(
        self, records: Mapping[tuple[str, str], bytes], *, deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Seal and store every record, and delete ``deletes`` (namespace, key), in one atomic, fenced transaction
        (``LeaseLost`` if the epoch is stale)."""
        if records or deletes:
            write = await self.sealed_write(records)
            await self._write(replace(write, deletes=tuple(deletes)) if deletes else write)

    async def sealed_write(self, records: Mapping[tuple[str, str], bytes]) -> AuthWrite:
        """The fenced write that ``put_many`` would commit, sealed, for a caller that commits it together with
        other changes in its own transaction."""
        self._vaults.drop_preloaded(self.session_id)
        data_key = await self._vaults.data_key(self.tenant_id, self.session_id, create=True)
        assert data_key is not None
        sealed = {(ns, key): seal(data_key, value, self._aad(ns, key)) for (ns, key), value in records.items()}
        return AuthWrite(self.tenant_id, self.session_id, self.owner, self.epoch, sealed)

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> None:
        self._vaults.drop_preloaded(self.session_id)
        if keys:
            deletes = [(namespace, key) for key in keys]
            await self._write(AuthWrite(self.tenant_id, self.session_id, self.owner, self.epoch, {}, deletes))

    async def _write(self, write: AuthWrite) -> None:
        combiner = self._vaults._combiner
        if combiner is not None:
            await combiner.write(write)
            return
        await self._store.write(
            write.tenant_id,
            write.session_id,
            owner=write.owner,
            epoch=write.epoch,
            upserts=write.upserts,
            deletes=write.deletes,
        )

    async def wipe(self) -> None:
        """Delete every record (logout, quarantine). The data key stays (message bodies sealed with it still open),
        unless it is damaged itself: then a new one replaces it, so that the session can be linked again."""
        self._vaults.drop_preloaded(self.session_id)
        await self._store.write(
            self.tenant_id, self.session_id, owner=self.owner, epoch=self.epoch, upserts={}, replace_all=True
        )
        await self._vaults.replace_damaged_key(self.tenant_id, self.session_id)

    async def export(self) -> bytes:
        return self.bundle(await self.get_all())

    def bundle(self, records: Sequence[tuple[str, str, bytes]], *, device: str | None = None) -> bytes:
        """``records`` (as ``get_all`` lists them) sealed as a bundle of this session, under the active KEK."""
        keyring = self._vaults.keyring
        header = BundleHeader(
            keyring.active_id, self.tenant_id, self.session_id, self._vaults._clock(), len(records), device
        )
        return seal_bundle(keyring, header, records)

    async def import_bundle(self, bundle: bytes) -> int:
        """Replace this session's state with a bundle's, atomically and fenced; returns the record count."""
        _, records = open_bundle(self._vaults.keyring, bundle)
        self._vaults.drop_preloaded(self.session_id)
        data_key = await self._vaults.data_key(self.tenant_id, self.session_id, create=True)
        assert data_key is not None
        sealed = {(ns, key): seal(data_key, value, self._aad(ns, key)) for ns, key, value in records}
        await self._store.write(
            self.tenant_id, self.session_id, owner=self.owner, epoch=self.epoch, upserts=sealed, replace_all=True
        )
        return len(records)


def reseal_bundle(keyring: Keyring, bundle: bytes) -> bytes | None:
    """The bundle sealed again under the active KEK (key rotation); None when it already is."""
    header, records = open_bundle(keyring, bundle)
    if header.kek_id == keyring.active_id:
        return None
    fresh = BundleHeader(
        keyring.active_id, header.tenant_id, header.session_id, header.created_at, header.records, header.device
    )
    return seal_bundle(keyring, fresh, records)

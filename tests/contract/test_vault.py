"""The vault contract over SQLite and PostgreSQL: sealed at rest, fenced by lease epoch, portable bundles."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from tests.support.damage import flip_auth_record, flip_data_key
from wagate.crypto.keyring import Keyring
from wagate.domain.sessions import Desired, NewSession, Quotas
from wagate.domain.tenants import Tenant
from wagate.errors import CryptoError, DamagedKey, DamagedRecord, LeaseLost, UnknownKeyError
from wagate.store.base import Store
from wagate.store.bodies import BodySealer
from wagate.store.vault import Vault, Vaults

KEYRING = Keyring({"k1": bytes(32)}, "k1")


async def _session_vault(store: Store, tenant: Tenant, name: str, owner: str = "w1") -> Vault:
    s = await store.sessions.create(
        NewSession(tenant.id, name, "sim", {}, Desired.RUNNING), quotas=Quotas(100, 1000), actor="test"
    )
    lease = await store.leases.acquire(s.id, owner, ttl=60)
    assert lease is not None
    return Vaults(store.auth, KEYRING).open(tenant.id, s.id, owner=owner, epoch=lease.epoch)


async def test_put_get_delete_round_trip(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    records = {("session", f"contact{i}"): os.urandom(200 + i) for i in range(1200)}  # more than one chunk
    records[("creds", "noise")] = b"\x00" * 32
    await vault.put_many(records)
    got = await vault.get_many("session", [f"contact{i}" for i in range(1200)] + ["missing"])
    assert got == {key: value for (ns, key), value in records.items() if ns == "session"}
    await vault.put_many({("creds", "noise"): b"changed"})
    assert await vault.get_many("creds", ["noise"]) == {"noise": b"changed"}
    versions = {(r.namespace, r.key): r.version for r in await store.auth.read_all(t.id, vault.session_id)}
    assert versions[("creds", "noise")] == 2
    assert versions[("session", "contact0")] == 1
    await vault.delete_many("session", [f"contact{i}" for i in range(600)])
    assert len(await vault.get_all()) == 601


async def test_values_are_sealed_at_rest(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    secret = b"identity-key-material-that-must-not-leak"
    await vault.put_many({("creds", "identity"): secret})
    (row,) = await store.auth.read_all(t.id, vault.session_id)
    assert secret not in row.value
    assert len(row.value) == len(secret) + 1 + 12 + 16
    wrapped = await store.auth.get_data_key(t.id, vault.session_id)
    assert wrapped is not None
    assert wrapped.kek_id == "k1"


async def test_stale_epoch_is_refused_atomically(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    old = await _session_vault(store, t, "s", owner="w1")
    await old.put_many({("creds", "a"): b"1"})
    lease = await store.leases.get(old.session_id)
    assert lease is not None
    await store.leases.release(old.session_id, "w1", lease.epoch)
    taken = await store.leases.acquire(old.session_id, "w2", ttl=60)
    assert taken is not None
    assert taken.epoch == old.epoch + 1
    with pytest.raises(LeaseLost):
        await old.put_many({("creds", "a"): b"stale", ("creds", "b"): b"stale"})
    with pytest.raises(LeaseLost):
        await old.delete_many("creds", ["a"])
    new = Vaults(store.auth, KEYRING).open(t.id, old.session_id, owner="w2", epoch=taken.epoch)
    assert await new.get_many("creds", ["a", "b"]) == {"a": b"1"}  # nothing of the stale batch landed


async def test_export_import_moves_state_between_sessions_and_tenants(store: Store) -> None:
    a = await store.tenants.create("a", contact_email=None, max_sessions=None)
    b = await store.tenants.create("b", contact_email=None, max_sessions=None)
    src = await _session_vault(store, a, "src")
    dst = await _session_vault(store, b, "dst")
    await src.put_many({("creds", "me"): b"me", ("session", "x"): b"ratchet"})
    await dst.put_many({("creds", "leftover"): b"old"})
    bundle = await src.export()
    assert b"ratchet" not in bundle
    assert await dst.import_bundle(bundle) == 2
    assert sorted(await dst.get_all()) == sorted(await src.get_all())
    with pytest.raises(CryptoError):
        await dst.import_bundle(bundle[:-1] + bytes([bundle[-1] ^ 1]))
    other = Vaults(store.auth, Keyring({"k2": b"\x01" * 32}, "k2")).open(b.id, dst.session_id, owner="w1", epoch=1)
    with pytest.raises(CryptoError):
        await other.import_bundle(bundle)
    assert sorted(await dst.get_all()) == sorted(await src.get_all())  # a refused import changes nothing


async def test_wipe_keeps_data_key(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    await vault.put_many({("creds", "a"): b"1"})
    bundle = await vault.export()
    await vault.wipe()
    assert await vault.get_all() == []
    assert await vault.import_bundle(bundle) == 1


async def test_concurrent_first_writes_agree_on_one_data_key(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    # Separate Vaults objects have separate caches: they race to create the data key.
    vaults = [Vaults(store.auth, KEYRING).open(t.id, vault.session_id, owner="w1", epoch=vault.epoch) for _ in range(4)]
    await asyncio.gather(*(v.put_many({("n", f"k{i}"): b"v%d" % i}) for i, v in enumerate(vaults)))
    fresh = Vaults(store.auth, KEYRING).open(t.id, vault.session_id, owner="w1", epoch=vault.epoch)
    assert await fresh.get_many("n", [f"k{i}" for i in range(4)]) == {f"k{i}": b"v%d" % i for i in range(4)}


async def test_combined_writes_share_transactions_and_stay_fenced_one_by_one(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vaults = Vaults(store.auth, KEYRING, combine=True)
    vault_list = []
    for i in range(20):
        s = await store.sessions.create(
            NewSession(t.id, f"s{i}", "sim", {}, Desired.RUNNING), quotas=Quotas(100, 1000), actor="test"
        )
        lease = await store.leases.acquire(s.id, "w1", ttl=60)
        assert lease is not None
        epoch = lease.epoch if i != 7 else lease.epoch + 1  # session 7's writer holds a stale epoch
        vault_list.append(vaults.open(t.id, s.id, owner="w1", epoch=epoch))
    for vault in vault_list:  # data keys first, so that the writes below are the only write transactions
        await vaults.data_key(t.id, vault.session_id, create=True)
    writes: list[str] = []
    store.set_observer(lambda operation, _seconds: writes.append(operation))
    try:
        results = await asyncio.gather(
            *(v.put_many({("chain", "c"): bytes([i]) * 8}) for i, v in enumerate(vault_list)), return_exceptions=True
        )
    finally:
        store.set_observer(None)
    assert [type(r) for r in results] == [type(None)] * 7 + [LeaseLost] + [type(None)] * 12
    assert writes.count("write") < 20  # grouped: fewer transactions than writers
    for i, vault in enumerate(vault_list):
        expected = {} if i == 7 else {"c": bytes([i]) * 8}
        assert await vault.get_many("chain", ["c"]) == expected


async def test_one_batch_keeps_each_sessions_writes_in_order(store: Store) -> None:
    from wagate.domain.auth import AuthWrite

    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    s = await store.sessions.create(
        NewSession(t.id, "s", "sim", {}, Desired.RUNNING), quotas=Quotas(100, 1000), actor="test"
    )
    lease = await store.leases.acquire(s.id, "w1", ttl=60)
    assert lease is not None

    def w(upserts: dict[tuple[str, str], bytes], deletes: tuple[tuple[str, str], ...] = ()) -> AuthWrite:
        return AuthWrite(t.id, s.id, "w1", lease.epoch, upserts, deletes)

    results = await store.auth.write_many(
        [
            w({("n", "a"): b"1", ("n", "keep"): b"k"}),
            w({}, (("n", "a"),)),  # after the first: "a" is gone
            w({("n", "b"): b"2"}),
            w({("n", "b"): b"3"}),  # the later one wins
            AuthWrite(t.id, s.id, "w1", lease.epoch + 1, {("n", "c"): b"stale"}),  # fenced out alone
        ]
    )
    assert [type(r).__name__ for r in results] == ["NoneType"] * 4 + ["LeaseLost"]
    stored = {r.key: r.value for r in await store.auth.read_all(t.id, s.id)}
    assert stored == {"keep": b"k", "b": b"3"}  # values as given (the store seals nothing itself)


async def test_a_damaged_record_is_named_and_does_not_hide_the_others(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    contacts = [f"1555000{i}@s.whatsapp.net" for i in range(4)]
    await vault.put_many({("chain", c): c.encode() for c in contacts} | {("creds", "device"): b"keys"})
    await flip_auth_record(store, vault.session_id, "chain", contacts[1])

    with pytest.raises(DamagedRecord) as raised:
        await vault.get_many("chain", contacts)
    assert isinstance(raised.value, CryptoError)  # callers that knew only CryptoError still see one
    assert raised.value.records == (("chain", contacts[1]),)
    assert raised.value.readable == {c: c.encode() for c in contacts if c != contacts[1]}
    assert contacts[1] not in str(raised.value)  # a contact's address is no log material
    assert await vault.get_many("chain", [contacts[0], contacts[2]]) == {c: c.encode() for c in contacts[::2]}
    assert await vault.get_many("creds", ["device"]) == {"device": b"keys"}

    # Loaded in bulk ahead of a restart, the same record is found damaged the same way.
    vaults = Vaults(store.auth, KEYRING)
    await vaults.preload([(t.id, vault.session_id)], "chain")
    preloaded = vaults.open(t.id, vault.session_id, owner="w1", epoch=vault.epoch)
    with pytest.raises(DamagedRecord) as again:
        await preloaded.get_many("chain", contacts)
    assert again.value.keys == [contacts[1]]

    with pytest.raises(DamagedRecord):
        await vault.get_all()
    readable, damaged = await vault.get_readable()
    assert damaged == [("chain", contacts[1])]
    assert len(readable) == 4

    await vault.put_many({("chain", contacts[1]): b"started over"})  # a damaged record is replaced like any other
    assert (await vault.get_many("chain", contacts))[contacts[1]] == b"started over"


async def test_a_damaged_data_key_is_named_per_session_and_replaced_at_the_wipe(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    damaged = await _session_vault(store, t, "damaged")
    sound = await _session_vault(store, t, "sound")
    for vault in (damaged, sound):
        await vault.put_many({("creds", "device"): b"keys", ("chain", "c1"): b"chain"})
    await flip_data_key(store, damaged.session_id)

    # A restart loads every key in bulk: the damaged one is said (once, without key material) and skipped.
    vaults = Vaults(store.auth, KEYRING)
    await vaults.preload([(t.id, damaged.session_id), (t.id, sound.session_id)], "creds")
    assert [r.getMessage() for r in caplog.records if r.name == "wagate.vault"] == [
        f"session {damaged.session_id}: its data key does not unwrap "
        "(the session's stored data key failed authentication); not preloaded"
    ]
    fresh = vaults.open(t.id, sound.session_id, owner="w1", epoch=sound.epoch)
    assert await fresh.get_many("creds", ["device"]) == {"device": b"keys"}

    # Read on its own, the damaged key reports the records asked for as damaged: the device's, for an engine.
    broken = vaults.open(t.id, damaged.session_id, owner="w1", epoch=damaged.epoch)
    with pytest.raises(DamagedKey) as raised:
        await broken.get_many("creds", ["device", "absent"])
    assert isinstance(raised.value, DamagedRecord)
    assert raised.value.records == (("creds", "device"),)
    assert await vaults.key_damaged(t.id, damaged.session_id)
    assert not await vaults.key_damaged(t.id, sound.session_id)
    assert await broken.get_readable() == ([], [("chain", "c1"), ("creds", "device")])

    # A wipe gives it a new key: the session can be linked again, and the other session's key is untouched.
    await broken.wipe()
    assert not await vaults.key_damaged(t.id, damaged.session_id)
    await broken.put_many({("creds", "device"): b"new keys"})
    again = Vaults(store.auth, KEYRING).open(t.id, damaged.session_id, owner="w1", epoch=damaged.epoch)
    assert await again.get_many("creds", ["device"]) == {"device": b"new keys"}
    assert await Vaults(store.auth, KEYRING).open(t.id, sound.session_id, owner="w1", epoch=sound.epoch).get_many(
        "chain", ["c1"]
    ) == {"c1": b"chain"}


async def test_a_data_key_under_a_missing_kek_is_not_damage(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    await vault.put_many({("creds", "device"): b"keys"})
    elsewhere = Vaults(store.auth, Keyring({"k2": bytes(range(32))}, "k2"))  # k1 not configured here
    await elsewhere.preload([(t.id, vault.session_id)], "creds")  # said and skipped, not raised
    opened = elsewhere.open(t.id, vault.session_id, owner="w1", epoch=vault.epoch)
    with pytest.raises(UnknownKeyError):
        await opened.get_many("creds", ["device"])
    with pytest.raises(UnknownKeyError):
        await elsewhere.key_damaged(t.id, vault.session_id)
    before = await store.auth.get_data_key(t.id, vault.session_id)
    await opened.wipe()  # the operator's to fix: the key is kept as it is, not replaced
    assert await store.auth.get_data_key(t.id, vault.session_id) == before
    restored = Vaults(store.auth, KEYRING).open(t.id, vault.session_id, owner="w1", epoch=vault.epoch)
    await restored.put_many({("creds", "device"): b"again"})
    assert await restored.get_many("creds", ["device"]) == {"device": b"again"}


async def test_a_data_key_is_replaced_only_while_it_is_what_was_read(store: Store) -> None:
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    other = await store.tenants.create("other", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    await vault.put_many({("creds", "device"): b"keys"})
    read = await store.auth.get_data_key(t.id, vault.session_id)
    assert read is not None
    first = KEYRING.wrap(os.urandom(32), t.id, vault.session_id)
    second = KEYRING.wrap(os.urandom(32), t.id, vault.session_id)

    assert not await store.auth.replace_data_key(other.id, vault.session_id, read, first)  # another tenant's: no
    assert await store.auth.get_data_key(t.id, vault.session_id) == read
    assert await store.auth.replace_data_key(t.id, vault.session_id, read, first)
    assert await store.auth.get_data_key(t.id, vault.session_id) == first
    assert not await store.auth.replace_data_key(t.id, vault.session_id, read, second)  # replaced meanwhile: kept
    assert await store.auth.get_data_key(t.id, vault.session_id) == first


async def test_each_body_sealer_reports_a_damaged_body_once_of_its_own(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged body is logged once per gateway (its sealer), not at every read, and not hidden from a second
    gateway in the same process by what the first has already reported."""
    t = await store.tenants.create("t", contact_email=None, max_sessions=None)
    vault = await _session_vault(store, t, "s")
    vaults = Vaults(store.auth, KEYRING)
    first, second = BodySealer(vaults), BodySealer(vaults)
    sealed = await first.seal_body(t.id, vault.session_id, "m1", {"text": "private words"})
    assert await second.readable_body(t.id, vault.session_id, "m1", sealed) == {"text": "private words"}
    damaged = sealed[:-1] + bytes([sealed[-1] ^ 1])

    caplog.set_level(logging.ERROR, logger="wagate")
    for _ in range(3):
        assert await first.readable_body(t.id, vault.session_id, "m1", damaged) is None
    assert await second.readable_body(t.id, vault.session_id, "m1", damaged) is None
    reports = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert reports == [f"message m1 of session {vault.session_id}: its stored body is damaged and cannot be read"] * 2
    assert "private words" not in caplog.text

"""Damaged snapshot parts of the neonize engine, over each store backend, offline (whatsmeow is not reachable here:
the probe host is ``web.whatsapp.invalid:443``): one bit flipped in one stored part, on a machine without the local
file (a redeploy), then what the engine does before anything connects."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import zlib
from pathlib import Path

import pytest

from tests.support.damage import flip_auth_record
from tests.support.engines import Recorder, new_session, vault_for, whatsmeow_database
from tests.support.supervision import eventually
from wagate.domain.events import EventType
from wagate.domain.sessions import Session, StatusChange
from wagate.engines.base import ContactStateDamaged, DeviceStateDamaged, EngineConnectError
from wagate.engines.neonize.engine import NeonizeEngine
from wagate.engines.neonize.options import NeonizeOptions
from wagate.engines.neonize.snapshot import CONTACT_NS, DB_KEY, DEVICE_RECORDS, META_KEY, NAMESPACE
from wagate.engines.registry import EngineRegistry
from wagate.gateway import Gateway
from wagate.store.vault import Vault
from wagate.supervisor.supervisor import Supervisor

OUR = "15550001:7@s.whatsapp.net"
DAMAGED, KEPT = "15550003", "15550002"
ADDRESSES = {KEPT: ["15550002:0", "15550002:3"], DAMAGED: ["15550003:0"]}


def linked(path: Path) -> None:
    """A linked device in whatsmeow's tables, with encryption sessions, identities and group sender keys of two
    contacts, and rows of the device's own (pre-keys, a contact's name)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key,"
            " signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key,"
            " adv_device_sig) VALUES (?, 5, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (OUR, *(os.urandom(n) for n in (32, 32, 32, 64, 32, 16, 64, 32, 64))),
        )
        db.executemany(
            "INSERT INTO whatsmeow_pre_keys VALUES (?, ?, ?, 1)", [(OUR, i, os.urandom(32)) for i in range(20)]
        )
        db.execute("INSERT INTO whatsmeow_contacts (our_jid, their_jid, full_name) VALUES (?, ?, 'Ann')", (OUR, "x"))
        for addresses in ADDRESSES.values():
            for address in addresses:
                db.execute("INSERT INTO whatsmeow_sessions VALUES (?, ?, ?)", (OUR, address, os.urandom(300)))
                db.execute("INSERT INTO whatsmeow_identity_keys VALUES (?, ?, ?)", (OUR, address, os.urandom(32)))
                db.execute(
                    "INSERT INTO whatsmeow_sender_keys VALUES (?, '1203@g.us', ?, ?)", (OUR, address, os.urandom(90))
                )
        db.commit()


def table(path: Path, name: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return sorted(db.execute(f"SELECT * FROM {name}").fetchall(), key=repr)  # noqa: S608 - test tables


async def snapshotted(gateway: Gateway, session: Session) -> tuple[NeonizeEngine, Vault, Path]:
    """A linked session's database, snapshotted into the vault; the local file is then gone (a redeploy)."""
    vault = await vault_for(gateway, session)
    engine = NeonizeEngine(NeonizeOptions.from_settings(gateway.settings.with_overrides(neonize_probe=""), sessions=1))
    connection = engine.open(Recorder().context(session, vault))
    await whatsmeow_database(engine, connection)
    linked(connection.file.path)
    assert await connection.snapshots.take(force=True)
    return engine, vault, connection.file.path


async def test_a_snapshot_keeps_each_contacts_encryption_rows_apart_and_writes_only_what_changed(
    gateway: Gateway,
) -> None:
    session = await new_session(gateway)
    engine, vault, path = await snapshotted(gateway, session)
    stored = {(r.namespace, r.key) for r in await gateway.store.auth.read_all(session.tenant_id, session.id)}
    assert stored == {(NAMESPACE, DB_KEY), (NAMESPACE, META_KEY), (CONTACT_NS, KEPT), (CONTACT_NS, DAMAGED)}
    before = {t: table(path, t) for t in ("whatsmeow_sessions", "whatsmeow_sender_keys", "whatsmeow_device")}

    connection = engine.open(Recorder().context(session, vault))
    assert await connection.snapshots.prepare()  # a start: the file is in step with the vault, and kept
    with contextlib.closing(sqlite3.connect(path)) as db:  # one contact's session moves on
        db.execute("UPDATE whatsmeow_sessions SET session = ? WHERE their_id = '15550002:3'", (b"next",))
        db.commit()
    versions = {
        (r.namespace, r.key): r.version for r in await gateway.store.auth.read_all(session.tenant_id, session.id)
    }
    assert await connection.snapshots.take(force=True)
    after = {(r.namespace, r.key): r.version for r in await gateway.store.auth.read_all(session.tenant_id, session.id)}
    changed = {k for k in after if after[k] != versions[k]}
    assert changed == {(CONTACT_NS, KEPT), (NAMESPACE, META_KEY)}  # not the device's part, not the other contact's

    path.unlink()  # a fresh machine: the parts make the same database again
    for companion in path.parent.glob(path.name + "*"):
        companion.unlink()
    assert await engine.open(Recorder().context(session, vault)).snapshots.prepare()
    assert table(path, "whatsmeow_sender_keys") == before["whatsmeow_sender_keys"]
    assert table(path, "whatsmeow_device") == before["whatsmeow_device"]
    moved = [r for r in table(path, "whatsmeow_sessions") if r[1] == "15550002:3"]
    assert moved == [(OUR, "15550002:3", b"next")]
    await engine.close()


async def test_a_damaged_contact_part_drops_that_contact_only(gateway: Gateway) -> None:
    session = await new_session(gateway)
    engine, vault, path = await snapshotted(gateway, session)
    kept_rows = [r for r in table(path, "whatsmeow_sessions") if str(r[1]).startswith(KEPT + ":")]
    await flip_auth_record(gateway.store, session.id, CONTACT_NS, DAMAGED)
    path.unlink()

    recorder = Recorder()
    offline = NeonizeEngine(NeonizeOptions.from_settings(gateway.settings, sessions=1))  # the probe does not resolve
    connection = offline.open(recorder.context(session, vault))
    with pytest.raises(EngineConnectError):
        await connection.connect()
    assert recorder.events == [ContactStateDamaged(f"{DAMAGED}@s.whatsapp.net")]
    assert (offline.starts, offline.unreachable) == (0, 1)
    # The file is there for whatsmeow, without the damaged contact's rows and with everything else.
    assert table(path, "whatsmeow_sessions") == kept_rows
    assert {r[2] for r in table(path, "whatsmeow_sender_keys")} == set(ADDRESSES[KEPT])
    assert len(table(path, "whatsmeow_pre_keys")) == 20
    assert connection.file.has_device()
    # The damaged part is gone from the vault, and the snapshot no longer names it.
    readable, damaged = await vault.get_readable()
    assert damaged == []
    assert (CONTACT_NS, DAMAGED) not in {(ns, key) for ns, key, _ in readable}
    latest = await connection.snapshots.latest()
    assert latest is not None
    assert set(latest.contacts) == {KEPT}
    assert connection.file.synced() == latest.digest  # the next start keeps the file as it is
    await offline.close()
    await engine.close()


@pytest.mark.parametrize("damaged", [DB_KEY, META_KEY])
async def test_a_damaged_device_part_ends_the_connection_before_anything_starts(gateway: Gateway, damaged: str) -> None:
    session = await new_session(gateway)
    engine, vault, path = await snapshotted(gateway, session)
    await flip_auth_record(gateway.store, session.id, NAMESPACE, damaged)
    if damaged == DB_KEY:  # the local file, in step with the vault, is whatsmeow's own: nothing to read, all well
        recorder = Recorder()
        offline = NeonizeEngine(NeonizeOptions.from_settings(gateway.settings, sessions=1))
        with pytest.raises(EngineConnectError):
            await offline.open(recorder.context(session, vault)).connect()
        assert recorder.events == []
    path.unlink()

    recorder = Recorder()
    offline = NeonizeEngine(NeonizeOptions.from_settings(gateway.settings, sessions=1))
    connection = offline.open(recorder.context(session, vault))
    await connection.connect()  # ends at once, with the event the supervisor acts on
    assert recorder.events == [DeviceStateDamaged(DEVICE_RECORDS)]
    assert (offline.starts, offline.unreachable) == (0, 0)  # neither whatsmeow nor the network was tried
    assert not connection.alive()
    assert not path.exists()
    await connection.disconnect()
    await offline.close()
    await engine.close()


@pytest.mark.e2e  # the supervisor runs neonize in an engine host
async def test_the_supervisor_puts_a_damaged_device_part_back_from_a_backup_of_the_same_link(
    gateway: Gateway,
) -> None:
    session = await new_session(gateway)
    engine, vault, path = await snapshotted(gateway, session)
    lease = await gateway.store.leases.get(session.id)
    assert lease is not None
    change = StatusChange(session.tenant_id, session.id, "w-test", lease.epoch, session.status, me={"id": OUR})
    (current,), _ = await gateway.store.sessions.commit([change], [])
    assert current is not None
    settings = gateway.settings.with_overrides(worker_id="w1", backoff_base=0.01, backoff_cap=0.05)
    supervisor = Supervisor(
        Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock),
        EngineRegistry(settings),
        rng=random.Random(3),
    )
    backup = await supervisor.backup(current, lease.epoch, "scheduled")
    assert backup is not None
    await gateway.store.leases.release(session.id, "w-test", lease.epoch)
    await flip_auth_record(gateway.store, session.id, NAMESPACE, DB_KEY)
    path.unlink()

    await supervisor.start()
    try:

        async def retrying() -> bool:  # restored, then connecting again: offline, so it retries
            runner = supervisor.runners.get(session.id)
            return runner is not None and runner.attempt >= 1

        await eventually(retrying, "a connection attempt after the restore")
        events = await gateway.store.events.list_events(session.tenant_id, types=[EventType.SESSION_CORRUPTED])
        assert [e.payload for e in events] == [{"cause": "damaged_record", "action": "restored", "backup": backup.id}]
        assert table(path, "whatsmeow_device")[0][0] == OUR  # materialised from the parts put back
        _, damaged = await vault.get_readable()
        assert damaged == []
        assert (supervisor.stats.damaged_records, supervisor.stats.quarantines) == (1, 0)
    finally:
        await supervisor.stop()
    await engine.close()


async def test_a_snapshot_of_the_first_format_materialises_and_the_next_is_written_in_parts(gateway: Gateway) -> None:
    """Vaults written before snapshots had parts hold the whole database in one record."""
    session = await new_session(gateway)
    engine, vault, path = await snapshotted(gateway, session)
    data = engine.open(Recorder().context(session, vault)).file.backup()
    before = {t: table(path, t) for t in ("whatsmeow_sessions", "whatsmeow_device", "whatsmeow_pre_keys")}
    await vault.wipe()
    meta = {"digest": hashlib.sha256(data).hexdigest(), "size": len(data), "taken_at": 1.0}
    await vault.put_many({(NAMESPACE, DB_KEY): zlib.compress(data), (NAMESPACE, META_KEY): json.dumps(meta).encode()})
    path.unlink()

    connection = engine.open(Recorder().context(session, vault))
    assert await connection.snapshots.prepare()
    assert {t: table(path, t) for t in before} == before
    assert await connection.snapshots.take(force=True)
    latest = await connection.snapshots.latest()
    assert latest is not None
    assert set(latest.contacts) == {KEPT, DAMAGED}
    await engine.close()

"""The neonize engine as far as a machine without WhatsApp allows: its Go library really runs (it creates whatsmeow's
database, fails to dial), its state goes through the real vault, the supervisor really retries it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from neonize.proto import Neonize_pb2 as nz

from tests.support.builders import make_settings
from tests.support.engines import (
    Recorder,
    fds,
    fill_pools,
    new_session,
    rss_kib,
    vault_for,
    whatsapp_resolves,
    whatsmeow_database,
)
from wagate.config import Settings
from wagate.domain.sessions import Desired, HistoryKind, Session, Status
from wagate.engines.base import (
    Connected,
    Disconnected,
    EngineConnectError,
    EngineEvent,
    MessageAck,
    Paired,
    QrCode,
    Reconnecting,
    Replaced,
)
from wagate.engines.neonize import events as neonize_events
from wagate.engines.neonize.engine import SENT_NS, NeonizeConnection, NeonizeEngine
from wagate.engines.neonize.options import NeonizeOptions
from wagate.engines.neonize.snapshot import CONTACT_NS, DB_KEY, NAMESPACE
from wagate.engines.registry import EngineRegistry
from wagate.gateway import Gateway
from wagate.supervisor.backoff import Backoff
from wagate.supervisor.supervisor import Supervisor


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await Gateway.open(make_settings(tmp_path))
    yield gw
    await gw.close()


def neonize(settings: Settings) -> NeonizeEngine:
    """The engine in this process, as the registry builds it when neonize does not run in engine hosts."""
    return NeonizeEngine(NeonizeOptions.from_settings(settings, sessions=settings.max_sessions_total))


# -- snapshots of whatsmeow's own database ---------------------------------------------------------------------


def fill_every_table(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Rows in every whatsmeow table (values by column type), and every table's rows read back."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.execute("PRAGMA foreign_keys = OFF")
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        assert "whatsmeow_device" in tables
        assert "whatsmeow_sessions" in tables
        for table in tables:
            columns = db.execute(f"PRAGMA table_info({table})").fetchall()
            for i in range(3):
                values: list[object] = []
                for _, name, kind, *_ in columns:
                    kind = kind.upper()
                    if "INT" in kind or "BOOL" in kind:
                        values.append(i + 1)
                    elif "BYTEA" in kind or "BLOB" in kind:
                        values.append(os.urandom(32))
                    else:
                        values.append(f"{table}.{name}.{i}@s.whatsapp.net")
                marks = ", ".join("?" for _ in columns)
                db.execute(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", values)  # noqa: S608 - names from the schema
        db.commit()
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}  # noqa: S608


def read_every_table(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}  # noqa: S608


async def test_whatsmeows_database_is_sealed_into_the_vault_and_materialised_again(
    gateway: Gateway, tmp_path: Path
) -> None:
    session = await new_session(gateway)
    vault = await vault_for(gateway, session)
    engine = neonize(gateway.settings.with_overrides(neonize_probe=""))
    connection = engine.open(Recorder().context(session, vault))
    await whatsmeow_database(engine, connection)
    before = fill_every_table(connection.file.path)
    assert sum(len(rows) for rows in before.values()) >= 3 * len(before)

    assert await connection.snapshots.take(force=True)
    assert not await connection.snapshots.take(force=True)  # unchanged: nothing written again
    # Sealed at rest: the stored records (the device's part, each contact's) hold none of the rows' text.
    stored = await gateway.store.auth.read_all(session.tenant_id, session.id)
    assert {r.key for r in stored if r.namespace == NAMESPACE} == {DB_KEY, "meta"}
    assert len([r for r in stored if r.namespace == CONTACT_NS]) == 9  # 3 rows in each of 3 per-contact tables
    assert all(b"whatsmeow" not in r.value and b"s.whatsapp.net" not in r.value for r in stored)

    connection.file.remove()  # a fresh machine, a redeploy
    assert not connection.file.exists()
    again = engine.open(Recorder().context(session, vault))
    assert await again.snapshots.prepare()  # a linked device is there
    assert read_every_table(again.file.path) == before

    # The file now matches the vault: a second start keeps it as it is (with any change made here since).
    with contextlib.closing(sqlite3.connect(again.file.path)) as db:
        db.execute("DELETE FROM whatsmeow_contacts")
        db.commit()
    assert await engine.open(Recorder().context(session, vault)).snapshots.prepare()
    assert read_every_table(again.file.path)["whatsmeow_contacts"] == []

    # Wiped credentials (a logout, a reset): the local file belongs to the past and goes.
    await vault.delete_many(NAMESPACE, [DB_KEY, "meta"])
    assert not await engine.open(Recorder().context(session, vault)).snapshots.prepare()
    assert not again.file.exists()
    await engine.close()


# -- the supervisor retrying an offline engine -----------------------------------------------------------------


async def test_two_hundred_offline_attempts_back_off_and_leak_nothing(gateway: Gateway) -> None:
    settings = gateway.settings.with_overrides(
        hosted_engines="",  # in this process (tests/engines/test_hosted_engine.py has the same in an engine host)
        worker_id="w1",
        backoff_base=0.002,
        backoff_cap=0.05,
        breaker_threshold=100_000,
        max_attempts=100_000,
    )
    registry = EngineRegistry(settings)
    supervisor = Supervisor(
        Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock), registry, rng=random.Random(5)
    )
    session = await new_session(gateway)
    await supervisor.start()
    try:

        async def attempts(count: int) -> None:
            async with asyncio.timeout(60):
                while (runner := supervisor.runners.get(session.id)) is None or runner.attempt < count:
                    await asyncio.sleep(0.01)

        await attempts(20)  # warmed up: threads, caches, the executor
        await fill_pools(gateway)
        fds_before, rss_before = await fds(), rss_kib()
        await attempts(220)
        fds_after, rss_after = await fds(), rss_kib()
        engine = registry.get("neonize")
    finally:
        await supervisor.stop()

    current = await gateway.store.sessions.get(session.tenant_id, session.name)
    assert current is not None
    assert current.status is Status.STARTING
    assert current.note is not None
    assert current.note.startswith("network unreachable: cannot resolve web.whatsapp.invalid")
    assert isinstance(engine, NeonizeEngine)
    assert engine.unreachable >= 220
    assert engine.starts == 0  # no start of neonize's Go side was attempted: nothing to leak
    assert abs(fds_after - fds_before) <= 2, (fds_before, fds_after)
    assert rss_after - rss_before < 8 * 1024, (rss_before, rss_after)  # neonize's own leak: ~36 MiB for 200

    # Every attempt is in the history with its delay, drawn under a growing bound (full jitter).
    history = await gateway.store.sessions.history(session.tenant_id, session.id, limit=1000)
    retries = [h.detail for h in history if h.kind is HistoryKind.STATUS and "attempt" in h.detail]
    assert len(retries) >= 200
    bound = Backoff(settings.backoff_base, settings.backoff_cap, random.Random())
    assert all(r["retry_in"] <= bound.bound(r["attempt"]) + 0.001 for r in retries)
    early = [r["retry_in"] for r in retries if r["attempt"] <= 3]
    late = [r["retry_in"] for r in retries if r["attempt"] >= 10]
    assert max(early) <= 0.0081
    assert sum(late) / len(late) > 3 * (sum(early) / len(early))


@pytest.mark.skipif(whatsapp_resolves(), reason="this machine reaches WhatsApp; neonize's offline failure needs none")
async def test_neonizes_own_dial_failure_reads_network_unreachable(gateway: Gateway) -> None:
    session = await new_session(gateway)
    vault = await vault_for(gateway, session)
    engine = neonize(gateway.settings.with_overrides(neonize_probe=""))  # straight to whatsmeow's dial
    connection = engine.open(Recorder().context(session, vault))
    with pytest.raises(EngineConnectError) as failure:
        await connection.connect()
    assert failure.value.reason.startswith("network unreachable: failed to dial whatsapp web websocket")
    assert (engine.starts, engine.failed_starts) == (1, 1)
    assert not connection.alive()
    await connection.disconnect()
    await engine.close()


# -- what the connection does with neonize's events ------------------------------------------------------------


def jid(user: str, server: str = "s.whatsapp.net") -> nz.JID:
    return nz.JID(User=user, Server=server, RawAgent=0, Device=0, Integrator=0, IsEmpty=False)


async def reading(connection: NeonizeConnection) -> None:
    connection._reader = asyncio.create_task(connection._read())


async def settle(recorder: Recorder, count: int) -> None:
    async with asyncio.timeout(5):
        while len(recorder.events) < count:
            await asyncio.sleep(0.01)


async def test_receipts_reach_the_gateways_ids_and_drops_become_reconnecting(gateway: Gateway) -> None:
    session = await new_session(gateway)
    vault = await vault_for(gateway, session)
    recorder = Recorder()
    engine = neonize(gateway.settings)
    connection = engine.open(recorder.context(session, vault))
    await vault.put_many({(SENT_NS, "WA-1"): b"3EB0OURS1", (SENT_NS, "WA-2"): b"3EB0OURS2"})
    await reading(connection)
    source = nz.MessageSource(Chat=jid("15550002"), Sender=jid("15550002"), IsFromMe=False, IsGroup=False)
    connection._queue.put_nowait(
        (
            "event",
            nz.Receipt(
                MessageSource=source, MessageIDs=["WA-1", "WA-9"], Timestamp=7, Type=nz.Receipt.ReceiptType.DELIVERED
            ),
        )
    )
    connection._queue.put_nowait(
        ("event", nz.Receipt(MessageSource=source, MessageIDs=["WA-2"], Timestamp=8, Type=nz.Receipt.ReceiptType.READ))
    )
    connection._queue.put_nowait(("event", nz.Disconnected(status=True)))
    connection._queue.put_nowait(("event", nz.StreamReplaced()))
    await settle(recorder, 4)
    assert recorder.events == [
        MessageAck("3EB0OURS1", "delivered", 7.0),  # WA-9 was not sent through the gateway
        MessageAck("3EB0OURS2", "read", 8.0),
        Reconnecting("the connection to WhatsApp dropped; whatsmeow is reconnecting"),
        Replaced(),
    ]
    assert await vault.get_many(SENT_NS, ["WA-1", "WA-2"]) == {"WA-1": b"3EB0OURS1"}  # read: the last receipt
    assert not connection.alive()
    await connection.disconnect()
    await engine.close()


async def test_qr_codes_expire_by_the_engines_own_timer(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neonize_events, "FIRST_QR_TTL", 0.2)
    monkeypatch.setattr(neonize_events, "NEXT_QR_TTL", 0.1)
    monkeypatch.setattr(neonize_events, "QR_GRACE", 0.05)
    session = await new_session(gateway)
    recorder = Recorder()
    engine = neonize(gateway.settings)
    connection = engine.open(recorder.context(session, await vault_for(gateway, session)))
    await reading(connection)
    connection._queue.put_nowait(("qr", b"2@first"))
    await asyncio.sleep(0.15)
    connection._queue.put_nowait(("qr", b"2@second"))  # came in time: the timer starts over
    await settle(recorder, 3)
    first, second, end = recorder.events
    assert isinstance(first, QrCode)
    assert isinstance(second, QrCode)
    assert (first.code, second.code) == ("2@first", "2@second")
    assert second.expires_at - first.expires_at < 0.2  # the next code lives 0.1 s, not 0.2
    assert end == Disconnected("qr_timeout", retryable=False)
    await connection.disconnect()
    await engine.close()


async def test_pairing_and_connecting_snapshot_before_anyone_hears_of_them(gateway: Gateway) -> None:
    session = await new_session(gateway)
    vault = await vault_for(gateway, session)
    recorder = Recorder()
    engine = neonize(gateway.settings.with_overrides(neonize_probe=""))
    connection = engine.open(recorder.context(session, vault))
    await whatsmeow_database(engine, connection)
    fill_every_table(connection.file.path)

    seen: list[tuple[str, bool]] = []

    async def check(event: EngineEvent) -> None:
        stored = await vault.get_many(NAMESPACE, ["meta"])
        seen.append((type(event).__name__, "meta" in stored))

    recorder.on_event = check

    class Me:  # what neonize's client knows once connected: its device
        me = nz.Device(JID=jid("15550001"), PushName="Shop", Platform="", BussinessName="", Initialized=True)

    connection = engine.open(recorder.context(session, vault))
    connection._client = Me()
    await reading(connection)
    pair = nz.PairStatus(ID=jid("15550001"), BusinessName="", Platform="", Status=nz.PairStatus.PStatus.SUCCESS)
    connection._queue.put_nowait(("event", pair))
    connection._queue.put_nowait(("event", nz.Connected(status=True)))
    await settle(recorder, 2)
    assert seen == [("Paired", True), ("Connected", True)]
    paired, connected = recorder.events
    assert isinstance(paired, Paired)
    assert isinstance(connected, Connected)
    assert (paired.me.phone, connected.me.push_name) == ("+15550001", "Shop")
    assert connection.snapshots.taken == 1  # the second look found nothing new
    await connection.disconnect()
    await engine.close()


# -- a real phone ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.environ.get("WAGATE_LIVE_WHATSAPP") != "1", reason="links a real phone: WAGATE_LIVE_WHATSAPP=1")
async def test_live_link_by_qr_and_send(gateway: Gateway, tmp_path: Path) -> None:
    """Run by hand with a phone: the QR code is printed in the terminal (pytest -s), scan it within a minute from
    WhatsApp > Linked devices; WAGATE_LIVE_TO (+digits) receives a message."""
    import segno

    to = os.environ.get("WAGATE_LIVE_TO")
    assert to, "set WAGATE_LIVE_TO to the phone number that receives the test message"
    settings = gateway.settings.with_overrides(worker_id="live", neonize_probe="web.whatsapp.com:443")
    registry = EngineRegistry(settings)
    supervisor = Supervisor(Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock), registry)
    session = await new_session(gateway, "live")
    await supervisor.start()
    try:
        async with asyncio.timeout(180):
            while (qr := supervisor.qr(session.id)) is None:
                await asyncio.sleep(0.2)
            segno.make_qr(qr.code).terminal(compact=True)
            while (current := await gateway.store.sessions.get(session.tenant_id, session.name)) is None or (
                current.status is not Status.WORKING
            ):
                await asyncio.sleep(0.5)
        runner = supervisor.runners[session.id]
        assert runner.conn is not None
        from wagate.domain.content import Text
        from wagate.domain.messages import new_message_id, normal_chat_id
        from wagate.engines.base import OutgoingMessage

        sent = await runner.conn.send(OutgoingMessage(new_message_id(), normal_chat_id(to), Text("wagate live test")))
        assert sent.message_id
    finally:
        await supervisor.stop()


async def test_resetting_one_contact_drops_only_its_encryption_sessions(gateway: Gateway) -> None:
    session = await new_session(gateway)
    engine = neonize(gateway.settings.with_overrides(neonize_probe=""))
    connection = engine.open(Recorder().context(session, await vault_for(gateway, session)))
    await whatsmeow_database(engine, connection)
    addresses = ["15550002:0", "15550002:3", "15550002_1:2", "155500021:0", "15550003:0"]
    with contextlib.closing(sqlite3.connect(connection.file.path)) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        db.executemany(
            "INSERT INTO whatsmeow_sessions (our_jid, their_id, session) VALUES (?, ?, ?)",
            [("15550001@s.whatsapp.net", a, b"state") for a in addresses],
        )
        db.commit()
    await connection.reset_contact("15550002@s.whatsapp.net")
    with contextlib.closing(sqlite3.connect(connection.file.path)) as db:
        left = sorted(r[0] for r in db.execute("SELECT their_id FROM whatsmeow_sessions"))
    assert left == ["155500021:0", "15550003:0"]  # another number that starts the same is not that contact
    await engine.close()


async def test_a_session_not_running_leaves_no_credentials_file_after_delete_logout_or_reset(gateway: Gateway) -> None:
    """whatsmeow's file holds the session's keys in the clear: it goes when the vault's copy goes, also for a
    session that is not running here (whose connection would otherwise have removed it)."""
    supervisor = Supervisor(gateway, EngineRegistry(gateway.settings))
    supervisor.recorder.start()  # what records the logout and the reset (the rest of the supervisor is not needed)
    directory = NeonizeOptions.from_settings(gateway.settings, sessions=1).directory
    directory.mkdir(parents=True, exist_ok=True)

    async def parked(name: str) -> tuple[Session, list[Path]]:
        session = await new_session(gateway, name)
        await gateway.store.sessions.set_desired(session.tenant_id, name, Desired.STOPPED, actor="test")
        files = [directory / f"{session.id}{suffix}" for suffix in (".db", ".db-wal", ".synced")]
        for path in files:
            path.write_bytes(b"keys")
        other = directory / "ses_someone_else.db"
        other.write_bytes(b"keys")
        return session, files

    deleted, files = await parked("deleted")
    await supervisor.forget(deleted)
    assert not any(p.exists() for p in files)
    assert (directory / "ses_someone_else.db").exists()

    logged_out, files = await parked("logged-out")
    stored = await gateway.store.sessions.get(logged_out.tenant_id, "logged-out")
    assert stored is not None
    await supervisor.logout(stored)
    assert not any(p.exists() for p in files)

    reset, files = await parked("reset")
    stored = await gateway.store.sessions.get(reset.tenant_id, "reset")
    assert stored is not None
    await supervisor.reset(stored)
    assert not any(p.exists() for p in files)
    await supervisor.recorder.stop()
    await supervisor.engines.close()


@pytest.mark.parametrize("hosted", ["", "neonize"], ids=["in-process", "hosted"])
async def test_the_supervisor_removes_local_files_of_sessions_deleted_elsewhere(gateway: Gateway, hosted: str) -> None:
    """whatsmeow's file holds a session's keys in the clear: one whose session was deleted through another worker
    (or while this one was down) goes; one of a session that exists stays, as do files that are no session's. The
    same when neonize runs in engine hosts: the files are the gateway's to look after (no host is started)."""
    settings = gateway.settings.with_overrides(worker_id="w1", hosted_engines=hosted)
    registry = EngineRegistry(settings)
    supervisor = Supervisor(
        Gateway(settings, gateway.store, gateway.keyring, gateway.vaults, gateway.clock), registry, rng=random.Random(5)
    )
    kept = await new_session(gateway)  # not started: the supervisor runs no reconcile here
    engine = registry.get("neonize")  # built as the first neonize session runs here
    assert type(engine).__name__ == ("HostedEngine" if hosted else "NeonizeEngine")
    directory = NeonizeOptions.from_settings(settings, sessions=1).directory
    directory.mkdir(parents=True, exist_ok=True)
    gone = "ses_01JDELETEDELSEWHERE000000"
    for name in (f"{gone}.db", f"{gone}.db-wal", f"{gone}.db-shm", f"{gone}.synced", f"{kept.id}.db", "notes.txt"):
        (directory / name).write_bytes(b"x")
    assert sorted(await engine.local_sessions()) == sorted([gone, kept.id])
    assert await supervisor.sweep_local() == 1
    assert sorted(p.name for p in directory.iterdir()) == sorted([f"{kept.id}.db", "notes.txt"])
    assert await supervisor.sweep_local() == 0  # nothing left to remove
    await registry.close()

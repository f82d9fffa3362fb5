"""Damaged stored auth state, over each store backend, with the sim engine and a real simulator on loopback: one bit
flipped in one stored record, straight in the database, then a restart.

A contact's record takes the Bad MAC path for that contact alone (the session runs on, every other contact too); the
device's own credentials are restored from a backup of the same link, or the session is quarantined; a session whose
data key itself is damaged is quarantined alone, and the others run.
"""

from __future__ import annotations

import logging

import pytest

from tests.support.damage import flip_auth_record, flip_data_key, flip_message_body
from tests.support.supervision import PHONE, Sim, eventually, link, status_of, supervisor_for
from wagate.domain.messages import QUEUED, MessageKind, MessageStatus, NewOutbound, new_message_id
from wagate.domain.phones import user_jid
from wagate.domain.sessions import Desired, HistoryKind, NewSession, Quotas, Reason, Session, Status
from wagate.engines.sim.engine import CHAIN_NS
from wagate.gateway import Gateway
from wagate.store.vault import Vaults

DAMAGED = "+15550003"
OTHER = "+15550002"


async def received_texts(gateway: Gateway, session: Session) -> list[str]:
    events = await gateway.store.events.list_events(session.tenant_id, types=["message"], limit=1000)
    return [str(e.payload["body"]) for e in events]


async def corrupted_events(gateway: Gateway, session: Session) -> list[dict[str, object]]:
    events = await gateway.store.events.list_events(session.tenant_id, types=["session.corrupted"], limit=100)
    return [e.payload for e in events]


async def test_a_damaged_contact_record_resets_that_contact_and_the_session_runs_on(
    gateway: Gateway, sim: Sim, session: Session
) -> None:
    first = supervisor_for(gateway, sim)
    await first.start()
    await link(gateway, sim, first, session)
    await sim.post(f"/devices/{PHONE}/messages", {"from": OTHER, "text": "other before", "count": 5})
    await sim.post(f"/devices/{PHONE}/messages", {"from": DAMAGED, "text": "damaged before", "count": 5})

    await eventually(lambda: _acked(sim, 10), "10 acks")
    await first.stop()
    await flip_auth_record(gateway.store, session.id, CHAIN_NS, user_jid(DAMAGED))

    # Queued while the gateway is down: the damaged contact's messages, and the other contact's, which go on
    # arriving one by one through the restart and after it.
    await sim.post(f"/devices/{PHONE}/messages", {"from": DAMAGED, "text": "damaged queued", "count": 5})
    await sim.post(f"/devices/{PHONE}/messages", {"from": OTHER, "text": "other flowing", "count": 30, "over": 3})
    restarted_at = gateway.clock()
    second = supervisor_for(gateway, sim)
    await second.start()
    try:

        async def reported() -> list[dict[str, object]]:
            return await corrupted_events(gateway, session)

        await eventually(reported, "session.corrupted")
        assert await corrupted_events(gateway, session) == [
            {"cause": "damaged_record", "contact": user_jid(DAMAGED), "action": "contact_reset"}
        ]
        await sim.post(f"/devices/{PHONE}/messages", {"from": DAMAGED, "text": "damaged after", "count": 5})
        wanted = {f"other flowing #{n}" for n in range(1, 31)}
        wanted |= {f"damaged queued #{n}" for n in range(1, 6)} | {f"damaged after #{n}" for n in range(1, 6)}

        async def all_arrived() -> bool:
            return wanted <= set(await received_texts(gateway, session))

        await eventually(all_arrived, "every message, the damaged contact's again under its new chain", timeout=15)
        texts = await received_texts(gateway, session)
        flowing = [t for t in texts if t.startswith("other flowing")]
        assert flowing == [f"other flowing #{n}" for n in range(1, 31)]  # in order, none missing, none twice
        assert len(texts) == len(set(texts))
        device = sim.server.describe(PHONE)
        assert device["decrypt_failures"] == 0  # nothing was lost: what was in flight came again
        assert device["contact_resets"] == 1
        assert device["pending"] == 0
        assert second.stats.damaged_records == 1

        current = await status_of(gateway, session, Status.WORKING)
        assert current.reason is None
        assert Status.SCAN_QR_CODE not in await since_restart(gateway, session, restarted_at)  # no new scan
        vault = second.vault(second.runners[session.id])
        assert user_jid(DAMAGED) in await vault.get_many(CHAIN_NS, [user_jid(DAMAGED)])  # a new chain, stored
    finally:
        await second.stop()


async def since_restart(gateway: Gateway, session: Session, restarted_at: float) -> list[Status | None]:
    history = await gateway.store.sessions.history(session.tenant_id, session.id, limit=100)
    return [h.to_status for h in history if h.kind is HistoryKind.STATUS and h.at >= restarted_at]


async def test_damaged_credentials_come_back_from_a_backup_of_the_same_link(
    gateway: Gateway, sim: Sim, session: Session
) -> None:
    first = supervisor_for(gateway, sim)
    await first.start()
    await link(gateway, sim, first, session)
    await sim.post(f"/devices/{PHONE}/messages", {"from": OTHER, "text": "before", "count": 5})
    runner = first.runners[session.id]
    backup = await first.backup(runner.session, runner.lease.epoch, "scheduled")
    assert backup is not None
    await first.stop()
    await flip_auth_record(gateway.store, session.id, "creds", "device")

    await sim.post(f"/devices/{PHONE}/messages", {"from": OTHER, "text": "after", "count": 5})
    restarted_at = gateway.clock()
    second = supervisor_for(gateway, sim)
    await second.start()
    try:

        async def all_arrived() -> bool:
            texts = set(await received_texts(gateway, session))
            return {f"before #{n}" for n in range(1, 6)} | {f"after #{n}" for n in range(1, 6)} <= texts

        await eventually(all_arrived, "the messages after the restore")
        assert await corrupted_events(gateway, session) == [
            {"cause": "damaged_record", "action": "restored", "backup": backup.id}
        ]
        await status_of(gateway, session, Status.WORKING)
        assert Status.SCAN_QR_CODE not in await since_restart(gateway, session, restarted_at)  # no new scan
        assert sim.server.describe(PHONE)["decrypt_failures"] == 0  # the chains were not taken from the backup
        vault = second.vault(second.runners[session.id])
        assert "device" in await vault.get_many("creds", ["device"])
        assert second.stats.damaged_records == 1
        assert second.stats.quarantines == 0
    finally:
        await second.stop()


async def test_damaged_credentials_without_a_backup_of_this_link_quarantine(
    gateway: Gateway, sim: Sim, session: Session
) -> None:
    first = supervisor_for(gateway, sim)
    await first.start()
    await link(gateway, sim, first, session)
    runner = first.runners[session.id]
    assert await first.backup(runner.session, runner.lease.epoch, "scheduled") is not None
    linked = await status_of(gateway, session, Status.WORKING)
    await first.logout(linked)  # the phone links again: a new device, whose keys no backup holds yet
    await link(gateway, sim, first, session)
    await sim.post(f"/devices/{PHONE}/messages", {"from": OTHER, "text": "kept", "count": 3})
    await eventually(lambda: _acked(sim, 3), "3 acks")
    older = {b.id for b in await gateway.store.backups.list_backups(session.tenant_id, session.id)}
    assert len(older) == 2  # this link's predecessor's: scheduled, and the one taken at the logout
    await first.stop()
    await flip_auth_record(gateway.store, session.id, "creds", "device")

    second = supervisor_for(gateway, sim)
    await second.start()
    try:
        quarantined = await status_of(gateway, session, Status.SCAN_QR_CODE)
        assert (quarantined.reason, quarantined.me) == (Reason.CORRUPTED, None)
        assert quarantined.note is not None
        assert "credentials are damaged" in quarantined.note
        (made,) = [
            b for b in await gateway.store.backups.list_backups(session.tenant_id, session.id) if b.id not in older
        ]
        assert made.reason == "corrupted"
        assert made.records == 1  # the readable chain; the damaged credentials are left out
        assert await corrupted_events(gateway, session) == [
            {"cause": "damaged_record", "action": "quarantined", "backup": made.id}
        ]
        assert await gateway.store.auth.read_all(session.tenant_id, session.id) == []  # wiped
        assert (second.stats.damaged_records, second.stats.quarantines) == (1, 1)
    finally:
        await second.stop()


async def _acked(sim: Sim, count: int) -> bool:
    return bool(sim.server.describe(PHONE)["messages_acked"] >= count)


async def test_a_damaged_queued_message_fails_alone_and_the_queue_goes_on(
    gateway: Gateway, sim: Sim, session: Session
) -> None:
    first = supervisor_for(gateway, sim)
    await first.start()
    await link(gateway, sim, first, session)
    await first.stop()
    ids = []
    for n in range(1, 4):
        message_id = new_message_id()
        body = await first.bodies.seal_body(session.tenant_id, session.id, message_id, {"text": f"out #{n}"})
        new = NewOutbound(session.tenant_id, session.id, message_id, user_jid(OTHER), "", MessageKind.TEXT, body)
        await gateway.store.messages.enqueue(new, max_queued=100)
        ids.append(message_id)
    await flip_message_body(gateway.store, session.id, ids[1])

    second = supervisor_for(gateway, sim)
    await second.start()
    try:

        async def settled() -> bool:
            found = [await gateway.store.messages.get(session.tenant_id, session.id, i) for i in ids]
            return all(m is not None and m.status not in QUEUED for m in found)

        await eventually(settled, "the three queued messages settled")
        assert [str(m.get("text")) for m in sim.server.device(PHONE).sent] == ["out #1", "out #3"]
        damaged = await gateway.store.messages.get(session.tenant_id, session.id, ids[1])
        assert damaged is not None
        assert (damaged.status, damaged.error) == (
            MessageStatus.FAILED,
            "the message's stored body is damaged and cannot be read",
        )
        runner = second.runners[session.id]
        assert runner.sender is not None
        assert runner.sender.task is not None
        assert not runner.sender.task.done()  # the sender goes on for what comes next
    finally:
        await second.stop()


async def test_a_damaged_data_key_quarantines_its_session_and_the_others_run(
    gateway: Gateway, sim: Sim, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    other_phone = "+15550009"
    other = await gateway.store.sessions.create(
        NewSession(session.tenant_id, "other", "sim", {}, Desired.RUNNING), quotas=Quotas(5, 100), actor="test"
    )
    first = supervisor_for(gateway, sim)
    await first.start()
    await link(gateway, sim, first, session)
    await link(gateway, sim, first, other, phone=other_phone)
    await first.stop()
    await flip_data_key(gateway.store, session.id)

    # A restarted process: no data key cached, both sessions claimed together and their keys loaded in bulk.
    vaults = Vaults(gateway.store.auth, gateway.keyring, gateway.clock)
    restarted = Gateway(gateway.settings, gateway.store, gateway.keyring, vaults, gateway.clock)
    second = supervisor_for(restarted, sim)
    await second.start()  # one damaged key does not stop the others
    try:
        await sim.post(f"/devices/{other_phone}/messages", {"from": OTHER, "text": "still here", "count": 3})

        async def arrived() -> bool:
            events = await gateway.store.events.list_events(session.tenant_id, types=["message"], limit=100)
            return {f"still here #{n}" for n in range(1, 4)} <= {str(e.payload["body"]) for e in events}

        await eventually(arrived, "the other session's messages")
        await status_of(gateway, other, Status.WORKING)

        quarantined = await status_of(gateway, session, Status.SCAN_QR_CODE)
        assert (quarantined.reason, quarantined.me) == (Reason.CORRUPTED, None)
        assert quarantined.note is not None
        assert "data key is damaged" in quarantined.note
        assert await corrupted_events(gateway, session) == [
            {"cause": "damaged_record", "action": "quarantined", "record": "data_key", "backup": None}
        ]
        assert (second.stats.damaged_records, second.stats.quarantines) == (1, 1)
        said = [r.getMessage() for r in caplog.records if r.name == "wagate.vault" and r.levelno >= logging.ERROR]
        assert said == [
            f"session {session.id}: its data key does not unwrap "
            "(the session's stored data key failed authentication); not preloaded"
        ]

        # The quarantine gave it a new data key: the phone links again and its messages are stored and read.
        await link(gateway, sim, second, session)
        await sim.post(f"/devices/{PHONE}/messages", {"from": OTHER, "text": "linked again", "count": 2})

        async def relinked() -> bool:
            return {"linked again #1", "linked again #2"} <= set(await received_texts(gateway, session))

        await eventually(relinked, "the relinked session's messages")
        assert not await vaults.key_damaged(session.tenant_id, session.id)
    finally:
        await second.stop()

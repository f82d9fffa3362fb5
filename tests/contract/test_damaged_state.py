"""Damaged stored auth state, over each store backend, with the sim engine and a real simulator on loopback: one bit
flipped in one stored record, straight in the database, then a restart.

A contact's record takes the Bad MAC path for that contact alone (the session runs on, every other contact too); the
device's own credentials are restored from a backup of the same link, or the session is quarantined.
"""

from __future__ import annotations

from tests.contract import test_supervisor
from tests.contract.test_supervisor import PHONE, Sim, eventually, link, status_of, supervisor_for
from tests.damage import flip_auth_record
from wagate.domain.phones import user_jid
from wagate.domain.sessions import HistoryKind, Session, Status
from wagate.engines.sim.engine import CHAIN_NS
from wagate.gateway import Gateway

sim = test_supervisor.sim  # the fixtures: a simulator on loopback, a session to link
session = test_supervisor.session
DAMAGED = "+15550003"
OTHER = "+15550002"


async def received_texts(gateway: Gateway, session: Session) -> list[str]:
    events = await gateway.store.events.list_events(session.tenant_id, types=["message.received"], limit=1000)
    return [str(e.payload["text"]) for e in events]


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

    async def acked(count: int) -> bool:
        return bool(sim.server.describe(PHONE)["messages_acked"] >= count)

    await eventually(lambda: acked(10), "10 acks")
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
        assert second.damaged_records == 1

        current = await status_of(gateway, session, Status.WORKING)
        assert current.reason is None
        history = await gateway.store.sessions.history(session.tenant_id, session.id, limit=100)
        since = [h.to_status for h in history if h.kind is HistoryKind.STATUS and h.at >= restarted_at]
        assert Status.SCAN_QR_CODE not in since  # no new scan
        vault = second.vault(second.runners[session.id])
        assert user_jid(DAMAGED) in await vault.get_many(CHAIN_NS, [user_jid(DAMAGED)])  # a new chain, stored
    finally:
        await second.stop()

"""WAHA's envelope as the store commits it (stamped with the session's account, metadata and engine, and the
process's environment), and events stored in the old envelope read in WAHA's after migration 0013, with their
pending deliveries; over SQLite and PostgreSQL (real connections) and the gateway's own keys."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert

from tests.support.builders import QUOTAS
from wagate.crypto.sealer import KeyringSealer
from wagate.domain.events import Committed, Event, EventType
from wagate.domain.sessions import Desired, NewSession, Status, StatusChange
from wagate.gateway import Gateway
from wagate.ids import TenantId, new_event_id
from wagate.store.sql import schema
from wagate.store.sql.migrations import m0013_waha_event_names

ME = {"id": "15550100:7@s.whatsapp.net", "phone": "15550100", "pushName": "Sales"}
METADATA = {"user.id": "123", "user.email": "email@example.com"}


async def test_every_event_is_stamped_as_the_commit_sees_its_session(gateway: Gateway) -> None:
    store = gateway.store
    tenant = await store.tenants.create("a", contact_email=None, max_sessions=None)
    session = await store.sessions.create(
        NewSession(tenant.id, "sales", "sim", {"metadata": METADATA}, Desired.RUNNING), quotas=QUOTAS, actor="t"
    )
    heard: list[Committed] = []
    store.events.listeners.append(heard.append)
    lease = await store.leases.acquire(session.id, "w#1", 30)
    assert lease is not None
    hello = Event.new(EventType.MESSAGE, tenant.id, session.id, "sales", 1000.5, {"n": 1})
    working = StatusChange(tenant.id, session.id, "w#1", lease.epoch, Status.WORKING, me=ME, events=(hello,))
    assert (await store.sessions.set_status_many([working]))[0] is not None

    stored = await store.events.list_events(tenant.id)
    assert [e.type for e in stored] == [EventType.SESSION_STATUS, EventType.MESSAGE]
    me_info: dict[str, Any] = {"id": "15550100@c.us", "pushName": "Sales", "jid": "15550100:7@s.whatsapp.net"}
    me_info["reachoutTimelock"] = None
    environment = {
        "version": stored[0].envelope()["environment"]["version"],
        "engine": "GOWS",
        "tier": "WAGATE",
        "browser": "",
        "platform": stored[0].envelope()["environment"]["platform"],
        "worker": {"id": gateway.settings.worker_id},
    }
    for event in stored:
        envelope = event.envelope()
        # The account set by the same transaction is the one its events carry.
        assert (envelope["me"], envelope["metadata"], envelope["engine"]) == (me_info, METADATA, "GOWS")
        assert envelope["environment"] == environment
        assert envelope["tenant"] == tenant.id
    assert stored[1].envelope()["timestamp"] == 1000500
    status = stored[0].payload
    assert (status["name"], status["status"], status["previous"]) == ("sales", "WORKING", "STOPPED")
    assert [p["status"] for p in status["statuses"]] == ["STOPPED", "WORKING"]
    # What subscribers heard live is what the history gives back, byte for byte.
    assert [e.body() for e in heard[-1].events] == [e.body() for e in stored]


def _old(tenant: str, session: str, event_id: str, type: str, at: float, payload: dict[str, object]) -> str:
    body = {"id": event_id, "type": type, "tenant": tenant, "session": session, "timestamp": at, "payload": payload}
    return json.dumps(body, separators=(",", ":"))


async def test_events_stored_in_the_old_envelope_stay_readable_and_are_delivered_in_waha_s(gateway: Gateway) -> None:
    store = gateway.store
    tenant = await store.tenants.create("a", contact_email=None, max_sessions=None)
    session = await store.sessions.create(
        NewSession(tenant.id, "main", "sim", {}, Desired.RUNNING), quotas=QUOTAS, actor="t"
    )
    hook = await store.webhooks.create(tenant.id, "https://hooks.example.com/in", ["*"], None, "whsec_x", limit=5)
    received = {"id": "3EB0AA", "chat": "111@s.whatsapp.net", "from": "111@s.whatsapp.net", "fromMe": False}
    received |= {"pushName": "Ann", "text": "hi", "timestamp": 1700000000.0}
    ack = {"id": "3EB0BB", "chatId": "111@s.whatsapp.net", "fromMe": True, "status": "read", "previous": "delivered"}
    ack |= {"timestamp": 1700000001.0}
    old: list[tuple[str, float, dict[str, object]]] = [
        ("message.received", 1700000000.25, received),
        ("message.ack", 1700000001.0, ack),
        ("session.qr", 1700000002.0, {"expiresAt": 1700000062.0}),
    ]
    sealer = KeyringSealer(gateway.keyring)
    db = store.db  # type: ignore[attr-defined]
    ids = []
    async with db.write() as conn:
        for type, at, payload in old:
            event_id = new_event_id()
            ids.append(event_id)
            body = _old(tenant.id, "main", event_id, type, at, payload).encode()
            kek_id, sealed = sealer.seal(body, "event", tenant.id, session.id, event_id)
            values: dict[str, Any] = {
                "id": event_id,
                "tenant_id": tenant.id,
                "session_id": session.id,
                "session_name": "main",
            }
            values |= {"type": type, "at": at, "kek_id": kek_id, "sealed": sealed}
            seq = (await conn.execute(insert(schema.events).values(**values).returning(schema.events.c.seq))).scalar()
            delivery: dict[str, Any] = {
                "webhook_id": hook.id,
                "tenant_id": tenant.id,
                "session_id": session.id,
                "event_seq": seq,
            }
            delivery |= {"state": "pending", "attempts": 0, "next_attempt_at": 0.0, "claim_until": 0.0}
            await conn.execute(insert(schema.webhook_deliveries).values(**delivery, created_at=at, updated_at=at))
        for statement in m0013_waha_event_names.STATEMENTS:  # what the migration does to such rows
            await conn.exec_driver_sql(statement)

    stored = await store.events.list_events(TenantId(tenant.id))
    assert [(e.id, e.type) for e in stored] == [
        (ids[0], EventType.MESSAGE),
        (ids[1], EventType.MESSAGE_ACK),
        (ids[2], EventType.SESSION_QR),
    ]
    message = stored[0].envelope()
    assert (message["event"], message["timestamp"], message["session"]) == ("message", 1700000000250, "main")
    assert (message["payload"]["id"], message["payload"]["body"], message["payload"]["from"]) == (
        "false_111@c.us_3EB0AA",
        "hi",
        "111@c.us",
    )
    assert (message["me"], message["engine"], message["environment"]) == (None, None, None)  # not recorded then
    assert stored[1].payload["ackName"] == "READ"
    assert stored[2].payload == {"expiresAt": 1700000062.0}
    found = await store.events.list_events(TenantId(tenant.id), types=["message"])  # by the new name
    assert [e.id for e in found] == [ids[0]]

    claimed = await store.outbox.claim("w#1", takeover="w#", ttl=30, limit=10)
    assert [o.delivery.event_id for o in claimed] == ids
    assert [o.delivery.event_type for o in claimed] == ["message", "message.ack", "session.qr"]
    assert [json.loads(o.body) for o in claimed] == [e.envelope() for e in stored]

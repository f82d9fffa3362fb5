"""The events a linked session reports, end to end through the supervisor and the sim engine over each store:
someone else's message as ``message``, the session's own sent through the API as ``message.any``, their acks as
``message.ack``; each in WAHA's envelope with the session's account, and ``message.any`` taking every message."""

from __future__ import annotations

from typing import Any

from tests.support.supervision import PHONE, Sim, eventually, link, supervisor_for
from wagate.domain.events import Event, EventFilter, EventType
from wagate.domain.messages import MessageKind, NewOutbound, new_message_id
from wagate.domain.sessions import Session
from wagate.gateway import Gateway

PEER = "15550009@s.whatsapp.net"


async def test_a_linked_session_reports_messages_in_waha_s_shapes(gateway: Gateway, sim: Sim, session: Session) -> None:
    supervisor = supervisor_for(gateway, sim)
    await supervisor.start()
    try:
        await link(gateway, sim, supervisor, session)
        linked = await gateway.store.sessions.get(session.tenant_id, session.name)
        assert linked is not None
        assert linked.me is not None
        own = f"{PHONE.removeprefix('+')}@c.us"
        await sim.post(f"/devices/{PHONE}/messages", {"from": "+15550002", "text": "hello", "count": 1})
        message_id = new_message_id()
        body = await supervisor.bodies.seal_body(session.tenant_id, session.id, message_id, {"text": "hi back"})
        outbound = NewOutbound(
            session.tenant_id, session.id, message_id, PEER, str(linked.me["id"]), MessageKind.TEXT, body
        )
        await gateway.store.messages.enqueue(outbound, max_queued=10)
        supervisor.nudge(session.id)

        async def reported() -> list[Event] | None:
            found = await gateway.store.events.list_events(session.tenant_id, types=["message", "message.any"])
            return found if len(found) == 2 else None

        events = await eventually(reported, "someone else's message and the session's own")
        assert isinstance(events, list)
        by_type = {e.type: e for e in events}
        received, sent = by_type[EventType.MESSAGE].envelope(), by_type[EventType.MESSAGE_ANY].envelope()
        for envelope in (received, sent):
            assert envelope["me"]["id"] == own
            assert (envelope["engine"], envelope["session"]) == ("GOWS", "main")
        payload: dict[str, Any] = received["payload"]
        assert (payload["from"], payload["to"], payload["fromMe"], payload["body"]) == (
            "15550002@c.us",
            own,
            False,
            "hello",
        )
        assert payload["id"] == f"false_15550002@c.us_{payload['_data']['id']}"
        mine: dict[str, Any] = sent["payload"]
        assert (mine["id"], mine["from"], mine["to"], mine["fromMe"]) == (
            f"true_15550009@c.us_{message_id}",
            own,
            "15550009@c.us",
            True,
        )
        assert (mine["body"], mine["source"], mine["ackName"]) == ("hi back", "api", "SERVER")

        async def acked() -> list[Event] | None:
            found = await gateway.store.events.list_events(session.tenant_id, types=["message.ack"])
            return found or None

        ack = await eventually(acked, "the sent message's ack")
        assert isinstance(ack, list)
        first = ack[0].payload  # sent, or delivered when the receipt came before the send was recorded
        assert (first["id"], first["from"], first["to"], first["fromMe"]) == (mine["id"], own, "15550009@c.us", True)
        assert (first["ackName"], first["status"]) in (("SERVER", "sent"), ("DEVICE", "delivered"))
        # message.any alone takes both, each under that name; message takes someone else's only.
        only_any = EventFilter(["message.any"])
        assert [only_any.name_for(e.type.value) for e in events] == ["message.any", "message.any"]
        assert [e.type for e in events if EventFilter(["message"]).matches(e)] == [EventType.MESSAGE]
    finally:
        await supervisor.stop()

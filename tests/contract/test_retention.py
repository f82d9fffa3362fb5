"""The node's retention over SQLite and PostgreSQL: messages past their tenant's retention and events past the event
retention go, every interval, and nothing else does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.builders import make_settings, tenant_with_session
from wagate.domain.events import Event, EventType
from wagate.domain.messages import InboundMessage, MessageKind
from wagate.domain.sessions import Session
from wagate.ids import SessionId, TenantId
from wagate.runtime.retention import Retention
from wagate.store.base import Store

FROM = "15550100@s.whatsapp.net"
DAY = 86400.0


def received(session: Session, message_id: str) -> InboundMessage:
    at = time.time()
    event = Event.new(EventType.MESSAGE, session.tenant_id, session.id, session.name, at, {"id": message_id})
    return InboundMessage(
        session.tenant_id, session.id, message_id, FROM, FROM, "Ann", MessageKind.TEXT, at, b"sealed", event
    )


def days_later(days: float) -> Callable[[], float]:
    return lambda: time.time() + days * DAY


async def test_each_round_deletes_only_what_is_past_its_retention(store: Store, tmp_path: Path) -> None:
    tenant, session = await tenant_with_session(store, "a")
    kept_tenant, kept_session = await tenant_with_session(store, "b")  # no message retention: keeps everything
    await store.tenants.update(tenant, {"message_retention_days": 1.0})
    await store.sessions.set_status_many([], [], [received(session, "OLD"), received(kept_session, "KEPT")])
    settings = make_settings(tmp_path, event_retention_days=7.0)

    async def messages_of(tenant_id: TenantId, session_id: SessionId) -> list[str]:
        return [m.id for m in await store.messages.list_messages(tenant_id, session_id, chat_id=None)]

    # Two days on: the rounds (every 50 ms here) delete the first tenant's messages; its events are not a week old.
    retention = Retention(store, settings, days_later(2), interval=0.05)
    await retention.start()
    try:
        for _ in range(200):
            if not await messages_of(tenant, session.id):
                break
            await asyncio.sleep(0.05)
    finally:
        await retention.stop()
    assert await messages_of(tenant, session.id) == []
    assert await messages_of(kept_tenant, kept_session.id) == ["KEPT"]
    assert len(await store.events.list_events(tenant)) == 1
    assert await retention.prune_messages() == 0  # nothing left: another node's round finds nothing

    # Eight days on: every event goes, whatever its tenant's message retention; the kept message stays.
    later = Retention(store, settings, days_later(8))
    assert await later.prune_events() == 2
    assert await store.events.list_events(tenant) == []
    assert await store.events.list_events(kept_tenant) == []
    assert await messages_of(kept_tenant, kept_session.id) == ["KEPT"]

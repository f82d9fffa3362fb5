"""The peer channel in SQL: PostgreSQL notifications on one channel per installation (its schema).

What crosses is drawn in ``announcements``. Events are announced by ``writer.EventWriter`` inside their
transactions, revocations by ``tenants`` inside theirs; this is the rest: whether to announce, listening, and the
hello and changed-endpoint notices. On SQLite (one process) nothing is sent or heard.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from wagate.domain.events import AnnounceListener
from wagate.ids import WebhookId
from wagate.store.contracts.peers import PeerChannel
from wagate.store.sql.announcements import NOTIFY, channel, notice, parse_announcement
from wagate.store.sql.db import Database
from wagate.store.sql.writer import EventWriter

__all__ = ["SqlPeerChannel"]

log = logging.getLogger("wagate.events")


class SqlPeerChannel(PeerChannel):
    def __init__(self, db: Database, writer: EventWriter) -> None:
        self._db = db
        self._writer = writer

    def announce(self, process: str | None) -> None:
        self._writer.announcer = process

    @asynccontextmanager
    async def listen(self, heard: AnnounceListener) -> AsyncIterator[Callable[[], bool] | None]:
        if self._db.dialect != "postgresql":
            yield None
            return

        def on_payload(payload: str) -> None:
            announced = parse_announcement(payload)
            if announced is None:
                log.warning("ignored a notification that announces no events")
            else:
                heard(announced)

        async with self._db.listening(channel(self._db.schema), on_payload) as alive:
            yield alive

    async def tell_peers(self, process: str, changed_webhooks: Sequence[WebhookId] = ()) -> None:
        if self._db.dialect != "postgresql":
            return
        payload = notice(process, changed_webhooks)
        async with self._db.write() as conn:
            await conn.execute(NOTIFY, {"channel": channel(self._db.schema), "payload": payload})

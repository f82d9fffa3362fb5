"""Received messages in SQL, written inside the transaction of a session's commit (``commit.SessionCommit``).

A message, its chat's counters, its sender's push name and its ``message`` event commit together, and only
for a message id not stored before (one redelivered after a lost acknowledgement is not stored twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case

from wagate.clock import Clock
from wagate.domain.messages import InboundMessage, MessageStatus
from wagate.store.sql import schema
from wagate.store.sql.prepared import InsertMany, Tx

__all__ = ["C", "InboundWriter", "K", "M", "count_into_chats"]

M = schema.messages
C = schema.chats
K = schema.contacts


def _count_into_chat(insert: Any) -> Any:
    """Count messages into their chat: more messages, and the newer of the two last messages."""
    newer = insert.excluded.last_message_at >= C.c.last_message_at
    return insert.on_conflict_do_update(
        index_elements=["session_id", "id"],
        set_={
            "messages": C.c.messages + insert.excluded.messages,
            "last_message_at": case((newer, insert.excluded.last_message_at), else_=C.c.last_message_at),
            "last_message_id": case((newer, insert.excluded.last_message_id), else_=C.c.last_message_id),
        },
    )


def _take_push_name(insert: Any) -> Any:
    return insert.on_conflict_do_update(
        index_elements=["session_id", "id"],
        set_={"push_name": insert.excluded.push_name, "updated_at": insert.excluded.updated_at},
    )


_CHAT_COUNT = InsertMany(
    C, ("session_id", "id", "tenant_id", "last_message_id", "last_message_at", "messages"), conflict=_count_into_chat
)
_PUSH_NAME = InsertMany(
    K, ("session_id", "id", "tenant_id", "name", "push_name", "updated_at"), conflict=_take_push_name
)
_INSERT_RECEIVED = InsertMany(
    M,
    (
        "tenant_id",
        "session_id",
        "id",
        "chat_id",
        "sender",
        "from_me",
        "kind",
        "status",
        "timestamp",
        "created_at",
        "updated_at",
        "attempts",
        "body",
    ),
    conflict=lambda insert: insert.on_conflict_do_nothing(index_elements=["session_id", "id"]),
    returning=("session_id", "id"),
)


class InboundWriter:
    """Stores received messages inside the caller's transaction."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def write(self, conn: Connection, items: Sequence[InboundMessage]) -> list[InboundMessage]:
        """Store the messages not stored before, inside the caller's transaction; the new ones."""
        unique: dict[tuple[str, str], InboundMessage] = {}
        for item in items:
            unique.setdefault((item.session_id, item.id), item)
        if not unique:
            return []
        now = self._clock()
        tx = Tx(conn)
        # One statement: the rows it did insert come back (a message stored before, redelivered after a lost ack,
        # conflicts and does not), matched by key since a multi-row insert does not promise their order.
        received, sent = MessageStatus.RECEIVED.value, MessageStatus.SENT.value
        inserted = _INSERT_RECEIVED.returned(
            tx,
            [
                (
                    m.tenant_id,
                    m.session_id,
                    m.id,
                    m.chat_id,
                    m.sender,
                    int(m.from_me),
                    m.kind.value,
                    sent if m.from_me else received,
                    m.timestamp,
                    now,
                    now,
                    0,
                    m.body,
                )
                for m in unique.values()
            ],
        )
        new_keys = set(inserted)
        fresh = [m for key, m in unique.items() if key in new_keys]
        if not fresh:
            return []
        count_into_chats(tx, [(m.tenant_id, m.session_id, m.chat_id, m.id, m.timestamp) for m in fresh])
        names = {(m.session_id, m.sender): m for m in fresh if m.push_name and not m.from_me}
        _PUSH_NAME.run(tx, [(m.session_id, m.sender, m.tenant_id, None, m.push_name, now) for m in names.values()])
        return fresh


def count_into_chats(tx: Tx, items: Sequence[tuple[str, str, str, str, float]]) -> None:
    """Count messages into their chats: (tenant, session, chat, message id, timestamp) each."""
    chats: dict[tuple[str, str], list[Any]] = {}
    for tenant_id, session_id, chat_id, message_id, timestamp in items:
        row = chats.get((session_id, chat_id))
        if row is None:
            chats[(session_id, chat_id)] = [session_id, chat_id, tenant_id, message_id, timestamp, 1]
            continue
        row[5] += 1
        if timestamp >= row[4]:
            row[4], row[3] = timestamp, message_id
    _CHAT_COUNT.run(tx, [tuple(row) for row in chats.values()])

"""Damage at rest, made for tests: one bit flipped in a sealed value, straight in the database (SQLite or
PostgreSQL), as a failing disk, a bad memory module or a careless hand would leave it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from wagate.ids import SessionId
from wagate.store.base import Store
from wagate.store.sql import SqlStore, schema

# A bit inside the ciphertext: after the format byte and the 12-byte nonce, before the tag.
BIT = (1 + 12 + 2) * 8 + 3


def _flipped(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


async def _flip(store: Store, table: Any, column: Any, where: list[Any], bit: int) -> None:
    assert isinstance(store, SqlStore)
    async with store.db.write() as conn:
        value = (await conn.execute(select(column).where(*where))).scalar_one()
        await conn.execute(update(table).where(*where).values({column.name: _flipped(bytes(value), bit)}))


async def flip_auth_record(store: Store, session_id: SessionId, namespace: str, key: str, bit: int = BIT) -> None:
    """Flip one bit of one stored auth record's sealed value."""
    table = schema.auth_records
    where = [table.c.session_id == session_id, table.c.namespace == namespace, table.c.key == key]
    await _flip(store, table, table.c.value, where, bit)


async def flip_message_body(store: Store, session_id: SessionId, message_id: str, bit: int = BIT) -> None:
    """Flip one bit of one stored message's sealed body."""
    table = schema.messages
    await _flip(store, table, table.c.body, [table.c.session_id == session_id, table.c.id == message_id], bit)


async def flip_data_key(store: Store, session_id: SessionId, bit: int = BIT) -> None:
    """Flip one bit of a session's wrapped data key (its KEK id left as it is)."""
    table = schema.session_keys
    await _flip(store, table, table.c.wrapped, [table.c.session_id == session_id], bit)

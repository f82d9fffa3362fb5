"""The schema as the code declares it: tables, columns, keys, constraints and indexes.

Queries are built from these tables; the DDL that creates them lives in the numbered migrations, written once and
never edited. The schema drift test applies the migrations to an empty database and checks that they produce exactly
what is declared here, on SQLite and on PostgreSQL, so that a migration and this file cannot disagree unnoticed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "SERIAL_TABLE",
    "Serial",
    "api_keys",
    "auth_records",
    "backups",
    "chat_groups",
    "chats",
    "contacts",
    "events",
    "message_media",
    "messages",
    "metadata",
    "migrations",
    "session_history",
    "session_keys",
    "session_leases",
    "sessions",
    "tenants",
    "webhook_deliveries",
    "webhooks",
    "where",
    "workers",
    "write_probe",
    "ws_tickets",
]

metadata = MetaData()

# A sequence number: BIGSERIAL on PostgreSQL, SQLite's rowid (INTEGER PRIMARY KEY AUTOINCREMENT, 64 bits anyway).
Serial = BigInteger().with_variant(Integer(), "sqlite")
SERIAL_TABLE: dict[str, Any] = {"sqlite_autoincrement": True}


def where(condition: str) -> dict[str, Any]:
    """A partial index's condition, as SQL text that reads the same on both databases (PostgreSQL's generic plans
    match a partial index only to a literal condition, never to a bound parameter)."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


def _owner(table: str, *, cascade: bool = True) -> ForeignKey:
    return ForeignKey(f"{table}.id", ondelete="CASCADE" if cascade else None)


tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("contact_email", Text),
    Column("max_sessions", Integer),
    Column("created_at", Double, nullable=False),
    Column("message_retention_days", Double),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, _owner("tenants")),
    Column("role", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
    Column("session", Text),  # a scoped key's one session, by name; NULL: all of its tenant's
    Column("actions", Text),  # a scoped key's actions, a JSON list; NULL: all
    Column("disabled_at", Double),  # switched off (WAHA's isActive: false); NULL: on
    Index("ix_api_keys_tenant", "tenant_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, _owner("tenants", cascade=False), nullable=False),
    Column("name", Text, nullable=False),
    Column("engine", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("desired", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("me", Text),
    Column("status_note", Text),
    Column("connected_at", Double),
    Column("generation", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("tenant_id", "name"),
    Index("ix_sessions_desired", "desired"),
)

session_history = Table(
    "session_history",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("session_id", Text, _owner("sessions"), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("at", Double, nullable=False),
    Column("kind", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text),
    Column("desired", Text),
    Column("reason", Text),
    Column("detail", Text),
    Index("ix_session_history_session", "session_id", "id"),
    **SERIAL_TABLE,
)

session_keys = Table(
    "session_keys",
    metadata,
    Column("session_id", Text, _owner("sessions"), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("kek_id", Text, nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

auth_records = Table(
    "auth_records",
    metadata,
    Column("session_id", Text, _owner("sessions"), primary_key=True),
    Column("namespace", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("updated_at", Double, nullable=False),
)

session_leases = Table(
    "session_leases",
    metadata,
    Column("session_id", Text, _owner("sessions"), primary_key=True),
    Column("owner", Text),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("acquired_at", Double, nullable=False),
    Index("ix_leases_owner", "owner"),
)

workers = Table(
    "workers",
    metadata,
    Column("owner", Text, primary_key=True),
    Column("started_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("url", Text),
)

backups = Table(
    "backups",
    metadata,
    Column("id", Text, primary_key=True),
    Column("session_id", Text, _owner("sessions"), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("reason", Text, nullable=False),
    Column("records", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_backups_session", "session_id", "created_at"),
)

events = Table(
    "events",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("tenant_id", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("session_name", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("at", Double, nullable=False),
    Column("kek_id", Text, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Index("ix_events_tenant", "tenant_id", "seq"),
    Index("ix_events_session", "session_id", "seq"),
    Index("ix_events_at", "at"),
    **SERIAL_TABLE,
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, _owner("tenants"), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("session_name", Text),
    Column("kek_id", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("header_names", Text),  # JSON list of the endpoint's own headers' names (0008); NULL: none
    Column("headers", LargeBinary),  # their names and values, sealed under kek_id like the secret (0008)
    Column("previous_secret", LargeBinary),  # the secret before the last rotation, sealed likewise (0008)
    Column("previous_until", Double),  # until when deliveries are signed with it too (0008)
    Column("disabled_reason", Text),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("blocked_reason", Text),  # why the SSRF guard refused its address at the latest attempt (0009)
    Column("blocked_at", Double),  # since when (0009)
    Column("hmac", LargeBinary),  # WAHA's HMAC key, sealed under kek_id like the secret (0012); NULL: none
    Column("retries", Text),  # JSON of the endpoint's own retry policy (0012); NULL: the gateway's schedule
    Index("ix_webhooks_tenant", "tenant_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("webhook_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("claimed_by", Text),
    Column("claim_until", Double, nullable=False),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_deliveries_event", "event_seq"),
    Index("ix_deliveries_due", "seq", **where("state = 'pending'")),
    Index("ix_deliveries_queue", "webhook_id", "session_id", "seq", **where("state = 'pending'")),
    Index("ix_deliveries_dead", "webhook_id", "seq", **where("state = 'dead'")),
    Index("ix_deliveries_webhook", "webhook_id", "seq"),
    **SERIAL_TABLE,
)

ws_tickets = Table(
    "ws_tickets",
    metadata,
    Column("ticket_hash", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("key_id", Text),
)

messages = Table(
    "messages",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("chat_id", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("from_me", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("idem_key", Text),
    Column("idem_hash", Text),
    Column("body", LargeBinary, nullable=False),
    Index("ux_messages_id", "session_id", "id", unique=True),
    Index("ux_messages_idem", "tenant_id", "idem_key", unique=True),
    Index("ix_messages_chat", "session_id", "chat_id", "seq"),
    Index("ix_messages_chat_time", "session_id", "chat_id", "timestamp", "seq"),
    Index("ix_messages_queue", "session_id", "seq", **where("status IN ('pending', 'sending')")),
    Index("ix_messages_age", "tenant_id", "created_at"),
    **SERIAL_TABLE,
)

message_media = Table(
    "message_media",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("message_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

chats = Table(
    "chats",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("last_message_id", Text),
    Column("last_message_at", Double, nullable=False),
    Column("messages", BigInteger, nullable=False),
    Index("ix_chats_recent", "session_id", "last_message_at", "id"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text),
    Column("push_name", Text),
    Column("updated_at", Double, nullable=False),
)

chat_groups = Table(
    "chat_groups",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("subject", Text),
    Column("participants", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)

migrations = Table(
    "wagate_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("applied_at", Double, nullable=False),
)

# What the write probe adds and removes in one transaction (random bytes: nothing to compress); never holds a row.
write_probe = Table(
    "wagate_write_probe",
    metadata,
    Column("id", Text, primary_key=True),
    Column("filler", LargeBinary, nullable=False),
)

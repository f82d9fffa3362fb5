"""Table definitions used by queries. The DDL that creates them lives in the numbered migrations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("contact_email", Text),
    Column("max_sessions", Integer),
    Column("created_at", Double, nullable=False),
    Column("message_retention_days", Double),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("role", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("engine", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("desired", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("me", Text),
    Column("status_note", Text),
    Column("connected_at", Double),
    Column("generation", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

session_history = Table(
    "session_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("session_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("at", Double, nullable=False),
    Column("kind", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text),
    Column("desired", Text),
    Column("reason", Text),
    Column("detail", Text),
)

session_keys = Table(
    "session_keys",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("kek_id", Text, nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

auth_records = Table(
    "auth_records",
    metadata,
    Column("session_id", Text, primary_key=True),
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
    Column("session_id", Text, primary_key=True),
    Column("owner", Text),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("acquired_at", Double, nullable=False),
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
    Column("session_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("reason", Text, nullable=False),
    Column("records", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("session_name", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("at", Double, nullable=False),
    Column("kek_id", Text, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
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
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
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
)

ws_tickets = Table(
    "ws_tickets",
    metadata,
    Column("ticket_hash", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("expires_at", Double, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
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
    Column("version", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("applied_at", Double, nullable=False),
)

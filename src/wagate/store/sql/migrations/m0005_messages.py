"""0005: the message store (inbound and the outbound queue), outbound media awaiting their send, chats, contacts,
groups, and a per-tenant message retention."""

STATEMENTS = (
    """CREATE TABLE messages (
        seq {serial},
        tenant_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        id TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        from_me INTEGER NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        timestamp {double} NOT NULL,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT,
        idem_key TEXT,
        idem_hash TEXT,
        body {blob} NOT NULL
    )""",
    "CREATE UNIQUE INDEX ux_messages_id ON messages (session_id, id)",
    "CREATE UNIQUE INDEX ux_messages_idem ON messages (tenant_id, idem_key)",
    "CREATE INDEX ix_messages_chat ON messages (session_id, chat_id, seq)",
    "CREATE INDEX ix_messages_queue ON messages (session_id, seq) WHERE status IN ('pending', 'sending')",
    "CREATE INDEX ix_messages_age ON messages (tenant_id, created_at)",
    """CREATE TABLE message_media (
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        data {blob} NOT NULL,
        PRIMARY KEY (session_id, message_id)
    )""",
    """CREATE TABLE chats (
        session_id TEXT NOT NULL,
        id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        last_message_id TEXT,
        last_message_at {double} NOT NULL,
        messages BIGINT NOT NULL,
        PRIMARY KEY (session_id, id)
    )""",
    "CREATE INDEX ix_chats_recent ON chats (session_id, last_message_at, id)",
    """CREATE TABLE contacts (
        session_id TEXT NOT NULL,
        id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        name TEXT,
        push_name TEXT,
        updated_at {double} NOT NULL,
        PRIMARY KEY (session_id, id)
    )""",
    """CREATE TABLE chat_groups (
        session_id TEXT NOT NULL,
        id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        subject TEXT,
        participants TEXT NOT NULL,
        updated_at {double} NOT NULL,
        PRIMARY KEY (session_id, id)
    )""",
    "ALTER TABLE tenants ADD COLUMN message_retention_days {double}",
)

"""0003: events (history and webhook payloads, sealed), webhook endpoints, the delivery outbox, WebSocket tickets."""

STATEMENTS = (
    """CREATE TABLE events (
        seq {serial},
        id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        session_name TEXT NOT NULL,
        type TEXT NOT NULL,
        at {double} NOT NULL,
        kek_id TEXT NOT NULL,
        sealed {blob} NOT NULL
    )""",
    "CREATE INDEX ix_events_tenant ON events (tenant_id, seq)",
    "CREATE INDEX ix_events_session ON events (session_id, seq)",
    "CREATE INDEX ix_events_at ON events (at)",
    """CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        session_name TEXT,
        kek_id TEXT NOT NULL,
        secret {blob} NOT NULL,
        disabled_reason TEXT,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL
    )""",
    "CREATE INDEX ix_webhooks_tenant ON webhooks (tenant_id)",
    """CREATE TABLE webhook_deliveries (
        seq {serial},
        webhook_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        event_seq BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at {double} NOT NULL,
        claimed_by TEXT,
        claim_until {double} NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL
    )""",
    "CREATE INDEX ix_deliveries_pending ON webhook_deliveries (state, seq)",
    "CREATE INDEX ix_deliveries_group ON webhook_deliveries (webhook_id, session_id, state, seq)",
    "CREATE INDEX ix_deliveries_event ON webhook_deliveries (event_seq)",
    """CREATE TABLE ws_tickets (
        ticket_hash TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        expires_at {double} NOT NULL
    )""",
)

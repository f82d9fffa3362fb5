"""0001: tenants, API keys, sessions and their history, data keys, auth records, leases, backups."""

STATEMENTS = (
    """CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        contact_email TEXT,
        max_sessions INTEGER,
        created_at {double} NOT NULL
    )""",
    """CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT REFERENCES tenants(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at {double} NOT NULL,
        revoked_at {double}
    )""",
    "CREATE INDEX ix_api_keys_tenant ON api_keys (tenant_id)",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        engine TEXT NOT NULL,
        config TEXT NOT NULL,
        desired TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        me TEXT,
        generation BIGINT NOT NULL DEFAULT 0,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL,
        UNIQUE (tenant_id, name)
    )""",
    "CREATE INDEX ix_sessions_desired ON sessions (desired)",
    """CREATE TABLE session_history (
        id {serial},
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL,
        at {double} NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT,
        desired TEXT,
        reason TEXT,
        detail TEXT
    )""",
    "CREATE INDEX ix_session_history_session ON session_history (session_id, id)",
    """CREATE TABLE session_keys (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL,
        kek_id TEXT NOT NULL,
        wrapped {blob} NOT NULL,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL
    )""",
    """CREATE TABLE auth_records (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        value {blob} NOT NULL,
        updated_at {double} NOT NULL,
        PRIMARY KEY (session_id, namespace, key)
    )""",
    """CREATE TABLE session_leases (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
        owner TEXT,
        epoch BIGINT NOT NULL,
        expires_at {double} NOT NULL,
        acquired_at {double} NOT NULL
    )""",
    """CREATE TABLE backups (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL,
        created_at {double} NOT NULL,
        reason TEXT NOT NULL,
        records INTEGER NOT NULL,
        size BIGINT NOT NULL,
        payload {blob} NOT NULL
    )""",
    "CREATE INDEX ix_backups_session ON backups (session_id, created_at)",
)

"""0007: the workers that are alive, so that each claims its share of the sessions, and leases by owner.

A worker's row is refreshed by each of its reconcile rounds (the work that claims sessions), so a worker counts as
alive only while it is able to claim; ``url`` is where the others forward requests that only the worker running a
session can answer (its QR code, a pairing code). The owner index serves the renewal of a worker's leases and their
count.
"""

STATEMENTS = (
    """CREATE TABLE workers (
        owner TEXT PRIMARY KEY,
        started_at {double} NOT NULL,
        expires_at {double} NOT NULL,
        url TEXT
    )""",
    "CREATE INDEX ix_leases_owner ON session_leases (owner)",
)

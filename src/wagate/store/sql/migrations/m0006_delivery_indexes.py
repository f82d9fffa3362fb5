"""0006: the outbox's indexes over what is looked up, not over its whole history.

Pending deliveries (what the dispatcher scans and orders) and dead letters are indexed apart, each in a partial
index that holds only its own rows: a delivery that succeeds leaves the pending indexes (a delete where it was
inserted, instead of a move to another part of a full index), and they stay as small as the backlog however many
delivered rows the retention keeps. Listing a webhook's deliveries, newest first, reads an index by (webhook, seq).
"""

STATEMENTS = (
    "DROP INDEX ix_deliveries_pending",
    "DROP INDEX ix_deliveries_group",
    "CREATE INDEX ix_deliveries_due ON webhook_deliveries (seq) WHERE state = 'pending'",
    "CREATE INDEX ix_deliveries_queue ON webhook_deliveries (webhook_id, session_id, seq) WHERE state = 'pending'",
    "CREATE INDEX ix_deliveries_dead ON webhook_deliveries (webhook_id, seq) WHERE state = 'dead'",
    "CREATE INDEX ix_deliveries_webhook ON webhook_deliveries (webhook_id, seq)",
)

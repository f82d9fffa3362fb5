"""0009: why the SSRF guard refused a webhook endpoint's address at its latest attempt, and since when (NULL while
its attempts get through)."""

STATEMENTS = (
    "ALTER TABLE webhooks ADD COLUMN blocked_reason TEXT",
    "ALTER TABLE webhooks ADD COLUMN blocked_at {double}",
)

"""0012: a webhook endpoint's WAHA-style HMAC key (sealed under the row's kek_id, like its secret) and its own retry
policy (JSON: delaySeconds, attempts, policy); NULL: none, and the gateway's schedule."""

STATEMENTS = (
    "ALTER TABLE webhooks ADD COLUMN hmac {blob}",
    "ALTER TABLE webhooks ADD COLUMN retries TEXT",
)

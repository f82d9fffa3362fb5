"""0008: a webhook endpoint's own request headers (their names in the clear, names and values sealed) and the
secret it had before the last rotation (sealed), with the time until which deliveries are signed with it too."""

STATEMENTS = (
    "ALTER TABLE webhooks ADD COLUMN header_names TEXT",
    "ALTER TABLE webhooks ADD COLUMN headers {blob}",
    "ALTER TABLE webhooks ADD COLUMN previous_secret {blob}",
    "ALTER TABLE webhooks ADD COLUMN previous_until {double}",
)

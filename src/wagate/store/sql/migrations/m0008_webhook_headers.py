"""0008: a webhook endpoint's own request headers: their names in the clear, names and values sealed."""

STATEMENTS = (
    "ALTER TABLE webhooks ADD COLUMN header_names TEXT",
    "ALTER TABLE webhooks ADD COLUMN headers {blob}",
)

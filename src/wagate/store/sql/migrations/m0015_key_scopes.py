"""0015: scoped API keys (WAHA's keys): the one session a key is for (by name; NULL: all of its tenant's), the
actions it may take (a JSON list; NULL: all), and when it was switched off (WAHA's ``isActive: false``; NULL: on)."""

STATEMENTS = (
    "ALTER TABLE api_keys ADD COLUMN session TEXT",
    "ALTER TABLE api_keys ADD COLUMN actions TEXT",
    "ALTER TABLE api_keys ADD COLUMN disabled_at {double}",
)

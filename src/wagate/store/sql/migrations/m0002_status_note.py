"""0002: a human-readable note on the current status (the last connection error, what is awaited)."""

STATEMENTS = ("ALTER TABLE sessions ADD COLUMN status_note TEXT",)

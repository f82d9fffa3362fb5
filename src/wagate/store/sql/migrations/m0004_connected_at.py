"""0004: when a session last became WORKING (the dashboard's "last connection")."""

STATEMENTS = ("ALTER TABLE sessions ADD COLUMN connected_at {double}",)

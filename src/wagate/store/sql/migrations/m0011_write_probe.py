"""0011: a table of its own for the write probe (``/ready`` after a refused write): random bytes, which PostgreSQL
cannot compress, so that the probe needs as much room as it says; the migrations table is no longer borrowed."""

STATEMENTS = ("CREATE TABLE wagate_write_probe (id TEXT PRIMARY KEY, filler {blob} NOT NULL)",)

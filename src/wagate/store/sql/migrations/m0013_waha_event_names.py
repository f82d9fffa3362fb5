"""0013: events take WAHA's names: those stored as ``message.received`` are ``message`` (their sealed bodies are read
in WAHA's envelope as they are, see ``payloads.upgraded``), so filters by the new name find them."""

STATEMENTS = ("UPDATE events SET type = 'message' WHERE type = 'message.received'",)

"""0010: the API key a WebSocket ticket was issued under, so that a ticket stops working when its key is revoked.
Tickets issued before (none, or the key) are refused: they live for seconds, and the client asks for another."""

STATEMENTS = ("ALTER TABLE ws_tickets ADD COLUMN key_id TEXT",)

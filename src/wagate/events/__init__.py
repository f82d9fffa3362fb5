"""Events after they commit: the in-process bus, the WebSocket hub, webhook delivery and its SSRF guard."""

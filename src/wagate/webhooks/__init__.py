"""Webhook delivery: the dispatcher that decides (what is due, retries, dead letters), the child process that signs
and sends, and the HTTP client it sends with."""

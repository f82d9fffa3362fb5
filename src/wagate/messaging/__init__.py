"""Messaging: what the API and the supervisor share about messages (sealed bodies, media)."""

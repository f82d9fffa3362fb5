"""The HTTP API (WAHA-shaped, tenant-scoped)."""

"""Envelope encryption: records sealed with a per-session data key, data keys wrapped by key-encryption keys."""

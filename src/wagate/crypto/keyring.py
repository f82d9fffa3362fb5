"""Key-encryption keys (KEKs) by id, the active one, and how they are loaded.

``WAGATE_KEYS`` holds ``id:base64key[,id:base64key...]`` and ``WAGATE_ACTIVE_KEY`` names the one that wraps new data
keys. Rotation adds a new key, makes it active, and rewraps every data key (``wagate keys rotate``); record
ciphertexts are untouched because they are sealed with the data keys, which do not change.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wagate.config import Settings
from wagate.crypto.envelope import KEY_SIZE, associated_data, new_key, open_sealed, seal
from wagate.errors import ConfigError, UnknownKeyError

__all__ = [
    "DEV_KEY_FILE",
    "HOW_TO_MAKE_A_KEY",
    "KEY_ID_PATTERN",
    "Keyring",
    "WrappedKey",
    "generate_key_spec",
    "load_keyring",
    "parse_keys",
]

log = logging.getLogger("wagate.crypto")

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
DEV_KEY_FILE = "keys"
HOW_TO_MAKE_A_KEY = (
    "run `wagate keys generate` and set WAGATE_KEYS=<its output> and WAGATE_ACTIVE_KEY=<the id before the colon>"
)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key sealed under the KEK named ``kek_id``."""

    kek_id: str
    blob: bytes


def _data_key_aad(tenant: str, session: str, kek_id: str) -> bytes:
    return associated_data("data-key", tenant, session, kek_id)


class Keyring:
    """The configured KEKs. Wraps data keys under the active KEK, unwraps under whichever KEK sealed them."""

    def __init__(self, keks: Mapping[str, bytes], active_id: str) -> None:
        if active_id not in keks:
            raise ConfigError(f"active key {active_id!r} is not among the configured keys")
        for kek_id, kek in keks.items():
            if len(kek) != KEY_SIZE:
                raise ConfigError(f"key {kek_id!r} must be {KEY_SIZE} bytes, base64-encoded")
        self._keks = dict(keks)
        self.active_id = active_id

    @property
    def ids(self) -> list[str]:
        return sorted(self._keks)

    def wrap(self, data_key: bytes, tenant: str, session: str) -> WrappedKey:
        kek_id = self.active_id
        blob = seal(self._keks[kek_id], data_key, _data_key_aad(tenant, session, kek_id))
        return WrappedKey(kek_id, blob)

    def unwrap(self, wrapped: WrappedKey, tenant: str, session: str) -> bytes:
        kek = self._keks.get(wrapped.kek_id)
        if kek is None:
            raise UnknownKeyError(
                f"data key is wrapped by key {wrapped.kek_id!r}, which is not in WAGATE_KEYS; "
                "add it back until `wagate keys rotate` has run"
            )
        return open_sealed(kek, wrapped.blob, _data_key_aad(tenant, session, wrapped.kek_id))

    def rewrap(self, wrapped: WrappedKey, tenant: str, session: str) -> WrappedKey:
        """The same data key wrapped under the active KEK."""
        return self.wrap(self.unwrap(wrapped, tenant, session), tenant, session)

    def seal_with(self, kek_id: str, plaintext: bytes, aad: bytes) -> bytes:
        """Seal directly under a KEK (for portable bundles)."""
        return seal(self._kek(kek_id), plaintext, aad)

    def open_with(self, kek_id: str, sealed: bytes, aad: bytes) -> bytes:
        return open_sealed(self._kek(kek_id), sealed, aad)

    def _kek(self, kek_id: str) -> bytes:
        try:
            return self._keks[kek_id]
        except KeyError:
            raise UnknownKeyError(f"key {kek_id!r} is not in WAGATE_KEYS") from None


def generate_key_spec(key_id: str) -> str:
    """A new KEK as ``id:base64key``, the form WAGATE_KEYS takes."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise ConfigError("a key id is 1-32 of letters, digits, '_', '.', '-'")
    return f"{key_id}:{base64.b64encode(new_key()).decode()}"


def parse_keys(spec: str) -> dict[str, bytes]:
    """Parse ``id:base64key[,id:base64key...]``. Error messages never include key material."""
    keys: dict[str, bytes] = {}
    for index, item in enumerate(part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep or not KEY_ID_PATTERN.fullmatch(key_id):
            raise ConfigError(f"WAGATE_KEYS entry {index + 1} is not of the form id:base64key")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"WAGATE_KEYS entry {key_id!r} is not valid base64") from None
        if len(raw) != KEY_SIZE:
            raise ConfigError(f"WAGATE_KEYS entry {key_id!r} must decode to {KEY_SIZE} bytes")
        if key_id in keys:
            raise ConfigError(f"WAGATE_KEYS names key {key_id!r} twice")
        keys[key_id] = raw
    return keys


def load_keyring(settings: Settings) -> Keyring:
    """The keyring from settings; in development without keys, a key kept in ``<data dir>/keys``."""
    if settings.keys is not None and settings.keys.get_secret_value().strip():
        keks = parse_keys(settings.keys.get_secret_value())
        active = settings.active_key or (next(iter(keks)) if len(keks) == 1 else None)
        if active is None:
            raise ConfigError("WAGATE_KEYS holds several keys: set WAGATE_ACTIVE_KEY to the one to use for new keys")
        return Keyring(keks, active)
    if settings.production:
        raise ConfigError(f"WAGATE_ENV=production needs encryption keys: {HOW_TO_MAKE_A_KEY}")
    return _development_keyring(settings.data_dir / DEV_KEY_FILE)


def _development_keyring(path: Path) -> Keyring:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec = generate_key_spec("dev1")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(spec + "\n")
        log.warning("development mode: generated an encryption key in %s; set WAGATE_KEYS for production", path)
    else:
        log.warning("development mode: using the encryption key in %s; set WAGATE_KEYS for production", path)
    keks = parse_keys(path.read_text().strip())
    if not keks:
        raise ConfigError(f"{path} holds no key; delete it to generate a new one")
    return Keyring(keks, next(reversed(keks)))

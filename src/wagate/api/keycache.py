"""Who holds an API key, remembered for a moment: a busy client's key is looked up in the store (a hash and a read)
once a second, not on every request.

A key switched off, narrowed or deleted (``PUT`` or ``DELETE /api/keys/{id}``), or its tenant deleted, is forgotten
at once: every such change reaches the process's event bus (``LocalBus.revoke``) — from this process's own route, and
on PostgreSQL from the store's notice sent with the commit to every process, whoever made the change — and the cache
hears the bus. A lookup that was under way when a revocation came is not remembered (it may have read the key before
the change). What no notice reaches (admin keys revoked by ``wagate admin-key new`` beside a gateway on SQLite, or a
change while a worker's listening connection was down) is read again after ``ttl`` seconds. Unknown keys are never
remembered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from wagate.config import Settings
from wagate.crypto.tokens import hash_api_key
from wagate.domain.tenants import Principal
from wagate.ids import ApiKeyId, TenantId
from wagate.services.accounts import authenticate
from wagate.store.base import Store

__all__ = ["KEY_TTL", "MAX_KEYS", "KeyCache"]

KEY_TTL = 1.0  # seconds a key found is trusted without a notice of its change
MAX_KEYS = 10_000  # keys remembered at most (past it, the expired go, then all)


class KeyCache:
    """The principals of the API keys seen lately, by the keys' hashes."""

    def __init__(
        self, store: Store, settings: Settings, *, ttl: float = KEY_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._settings = settings
        self.ttl = ttl
        self._clock = clock
        self._found: dict[str, tuple[float, Principal]] = {}  # key hash -> (trusted until, principal)
        self._revocations = 0  # revocations heard so far: a lookup under way across one is not remembered

    async def principal(self, given: str | None) -> Principal | None:
        """Who holds ``given``, or None (as ``wagate.services.accounts.authenticate``)."""
        if not given:
            return None
        digest = hash_api_key(given)
        now = self._clock()
        found = self._found.get(digest)
        if found is not None and found[0] > now:
            return found[1]
        revocations = self._revocations
        principal = await authenticate(self._store, self._settings, given)
        if principal is None:
            self._found.pop(digest, None)
        elif revocations == self._revocations:
            if len(self._found) >= MAX_KEYS:
                self._prune(now)
            self._found[digest] = (now + self.ttl, principal)
        return principal

    def forget(self, keys: Collection[ApiKeyId], tenants: Collection[TenantId]) -> None:
        """These keys changed or went, these tenants were deleted: their holders are looked up again."""
        self._revocations += 1
        if not keys and not tenants:
            return
        self._found = {
            digest: (until, principal)
            for digest, (until, principal) in self._found.items()
            if principal.key_id not in keys and principal.tenant_id not in tenants
        }

    def _prune(self, now: float) -> None:
        self._found = {digest: entry for digest, entry in self._found.items() if entry[0] > now}
        if len(self._found) >= MAX_KEYS:
            self._found.clear()

"""The error tree. Every error wagate raises on purpose derives from :class:`WagateError`.

::

    WagateError
    ├── ConfigError                  settings that cannot work; the message says what to do
    ├── CryptoError                  a sealed value failed to open (wrong key, tampered, moved)
    │   ├── UnknownKeyError          a key-encryption key id that is not configured
    │   └── DamagedRecord            stored auth records that no longer open (changed at rest); names them
    │       └── DamagedKey           a session's data key that no longer unwraps: none of its records open
    ├── StoreError                   the store failed or refused
    │   ├── StoreUnavailable         the database cannot be reached, or refuses writes for now (read-only)
    │   │   └── StorageFull          its disk, or its size limit, is full
    │   ├── AlreadyExists            a unique name is taken
    │   └── LeaseLost                the caller's lease epoch is stale: another owner took the session
    └── ApiError                     maps to an HTTP answer (status, code)
        ├── BadRequest               400
        ├── Unauthorized             401 missing or unknown API key
        ├── Forbidden                403 a valid key without the right (tenant key on an admin route)
        ├── NotFound                 404 also for another tenant's resources, so nothing leaks
        ├── Conflict                 409
        ├── Unprocessable            422 well-formed but unacceptable (invalid name, name taken)
        ├── QuotaExceeded            429
        │   └── QueueFull            429 a session's outbound queue is full (with Retry-After)
        └── ServiceUnavailable       503 the operation needs what this process cannot reach now

One exception handler (``wagate.api.errors``) turns ``ApiError`` into
``{"statusCode", "message", "error": {"code", "message"}}``; any other ``WagateError`` that reaches it is a 500
or 503 with a generic message, logged with its traceback.
Messages never carry secrets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "CryptoError",
    "DamagedKey",
    "DamagedRecord",
    "Forbidden",
    "IdempotencyConflict",
    "LeaseLost",
    "NotFound",
    "QueueFull",
    "QuotaExceeded",
    "ServiceUnavailable",
    "StorageFull",
    "StoreError",
    "StoreUnavailable",
    "Unauthorized",
    "UnknownKeyError",
    "Unprocessable",
    "WagateError",
]


class WagateError(Exception):
    """Root of every error wagate raises on purpose."""


class ConfigError(WagateError):
    """Settings that cannot work. The message tells the operator what to do."""


class CryptoError(WagateError):
    """A sealed value could not be opened: wrong key, tampered bytes, or bound to another record."""


class UnknownKeyError(CryptoError):
    """A sealed value names a key-encryption key that is not configured."""


class DamagedRecord(CryptoError):
    """Stored auth records that no longer open although the session's data key does (their bytes changed at rest).

    ``records`` names them as (namespace, key); ``readable`` holds what the same read could open, by key, so that
    the caller (the engine, which knows what each namespace means) deals with the damaged ones and goes on with the
    rest. The message names no key: keys are contacts' addresses.
    """

    def __init__(self, records: Sequence[tuple[str, str]], readable: Mapping[str, bytes] | None = None) -> None:
        namespaces = sorted({namespace for namespace, _ in records})
        super().__init__(f"{len(records)} stored record(s) in {', '.join(namespaces)} failed authentication")
        self.records = tuple(records)
        self.readable = dict(readable or {})

    @property
    def keys(self) -> list[str]:
        return [key for _, key in self.records]


class DamagedKey(DamagedRecord):
    """A session's wrapped data key that no longer unwraps although its key-encryption key is configured (its bytes
    changed at rest): nothing sealed with it opens again. ``records`` names those a read asked for, as damaged."""

    def __init__(self, records: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(records)
        self.args = ("the session's stored data key failed authentication",)


class StoreError(WagateError):
    """The store failed or refused an operation."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, or refuses writes for now (read-only, its disk failing). The message says
    which, without secrets; ``code`` is the API's."""

    code = "store_unavailable"


class StorageFull(StoreUnavailable):
    """The database's disk, or its size limit, is full: writes fail until room is made."""

    code = "storage_full"


class AlreadyExists(StoreError):
    """A unique name is taken."""


class LeaseLost(StoreError):
    """The caller's lease epoch is stale: another process owns the session now."""


class ApiError(WagateError):
    """An error with an HTTP meaning."""

    status_code = 500
    code = "internal_error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code


class BadRequest(ApiError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class Unprocessable(ApiError):
    status_code = 422
    code = "unprocessable"


class QuotaExceeded(ApiError):
    status_code = 429
    code = "quota_exceeded"


class QueueFull(QuotaExceeded):
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class IdempotencyConflict(Unprocessable):
    code = "idempotency_key_reused"


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "unavailable"

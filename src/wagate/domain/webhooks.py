"""A webhook endpoint: its own request headers (an ``Authorization`` its receiver expects, a routing key), checked;
its WAHA-style HMAC key and retry policy.

The gateway writes the request line, ``host``, ``user-agent``, ``content-type``, ``content-length``, the three
Standard Webhooks headers and WAHA's two HMAC headers itself; an endpoint's headers may not name any of them, nor a
header that changes how the connection or the body is read. Names are HTTP tokens, kept in lower case (HTTP's names
are case-insensitive, so ``Authorization`` and ``authorization`` are one header); values are one line of visible
Latin-1 text. Values are kept sealed and never shown again: the API lists the names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wagate.ids import EventId, SessionId, TenantId, WebhookId

__all__ = [
    "HEADER_NAME",
    "HEADER_VALUE",
    "MAX_HEADERS",
    "MAX_HMAC_KEY",
    "MAX_NAME",
    "MAX_RETRY_DELAY",
    "MAX_TOTAL",
    "MAX_VALUE",
    "RESERVED",
    "Delivery",
    "DeliveryState",
    "Endpoint",
    "Headers",
    "Outgoing",
    "Retries",
    "RetryPolicy",
    "Webhook",
    "WebhookChange",
    "custom_headers",
]

Headers = tuple[tuple[str, str], ...]  # (lower-case name, value), sorted by name

MAX_HEADERS = 20
MAX_NAME = 64
MAX_VALUE = 4096
MAX_TOTAL = 8192  # names and values together

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible Latin-1 characters, spaces and tabs inside; no control characters (CR and LF above all: no header of ours
# can be smuggled in through a value).
_VALUE = re.compile(r"[\x21-\x7e\xa0-\xff](?:[\x20-\x7e\xa0-\xff\t]*[\x21-\x7e\xa0-\xff])?")
HEADER_NAME = _TOKEN.pattern
HEADER_VALUE = _VALUE.pattern
RESERVED = frozenset(
    {
        "host",
        "user-agent",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-hmac",
        "x-webhook-hmac-algorithm",
    }
)


def custom_headers(given: Mapping[str, str]) -> Headers:
    """``given`` as an endpoint's headers; ``ValueError`` naming what is wrong."""
    if len(given) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    found: dict[str, str] = {}
    total = 0
    for name, value in given.items():
        lower = name.lower()
        if not (0 < len(name) <= MAX_NAME and _TOKEN.fullmatch(name)):
            raise ValueError(f"header {name[:MAX_NAME]!r}: a name is 1-{MAX_NAME} of A-Z a-z 0-9 !#$%&'*+-.^_`|~")
        if lower in RESERVED or lower.startswith("proxy-"):
            raise ValueError(f"header {name!r} is written by the gateway and cannot be set")
        if lower in found:
            raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
        if len(value) > MAX_VALUE or not _VALUE.fullmatch(value):
            raise ValueError(
                f"header {name!r}: a value is 1-{MAX_VALUE} visible Latin-1 characters on one line"
                " (no control characters, no leading or trailing space)"
            )
        total += len(name) + len(value)
        found[lower] = value
    if total > MAX_TOTAL:
        raise ValueError(f"the headers take {total} characters; at most {MAX_TOTAL}")
    return tuple(sorted(found.items()))


class RetryPolicy(StrEnum):
    """How the wait between attempts grows (WAHA's ``retries.policy``)."""

    CONSTANT = "constant"  # delaySeconds every time
    LINEAR = "linear"  # delaySeconds times the number of failures so far
    EXPONENTIAL = "exponential"  # delaySeconds doubled at each failure


MAX_RETRY_DELAY = 86400.0  # no wait between two attempts is longer than a day
MAX_HMAC_KEY = 1024  # characters of an HMAC key


@dataclass(frozen=True, slots=True)
class Retries:
    """An endpoint's own retry policy, in WAHA's terms: after a failed attempt, up to ``attempts`` more, waiting
    ``delay_seconds`` grown by ``policy`` (each wait at most a day)."""

    delay_seconds: float
    attempts: int
    policy: RetryPolicy

    def delay(self, failures: int) -> float | None:
        """The wait after the ``failures``-th failed attempt; None when no attempt is left."""
        if failures > self.attempts:
            return None
        if self.policy is RetryPolicy.CONSTANT:
            wait = self.delay_seconds
        elif self.policy is RetryPolicy.LINEAR:
            wait = self.delay_seconds * failures
        else:
            wait = self.delay_seconds * 2.0 ** min(failures - 1, 32)
        return min(wait, MAX_RETRY_DELAY)

    def as_dict(self) -> dict[str, Any]:
        return {"delaySeconds": self.delay_seconds, "attempts": self.attempts, "policy": self.policy.value}

    @classmethod
    def of(cls, given: Mapping[str, Any]) -> Retries:
        return cls(float(given["delaySeconds"]), int(given["attempts"]), RetryPolicy(given["policy"]))


@dataclass(frozen=True, slots=True)
class Webhook:
    id: WebhookId
    tenant_id: TenantId
    url: str
    events: list[str]
    session: str | None
    disabled_reason: str | None
    created_at: float
    header_names: tuple[str, ...] = ()  # the endpoint's own headers (their values are sealed, never shown)
    updated_at: float = 0.0
    previous_until: float | None = None  # after a rotation: until when the previous secret signs too
    blocked_reason: str | None = None  # why the SSRF guard refused its address at the latest attempt
    blocked_at: float | None = None  # since when
    hmac: bool = False  # deliveries carry WAHA's X-Webhook-Hmac (the key is sealed, never shown)
    retries: Retries | None = None  # the endpoint's own retry policy; None: the gateway's schedule

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the delivery worker needs of an endpoint: the webhook, its signing secret, its own headers and its
    HMAC key."""

    webhook: Webhook
    secret: str
    headers: Headers = ()
    previous_secret: str | None = None
    hmac_key: str | None = None

    def secrets(self, now: float) -> tuple[str, ...]:
        """The secrets a delivery at ``now`` is signed with: the current one, and the one before the last rotation
        while it is still valid (a receiver holding either verifies)."""
        until = self.webhook.previous_until
        if self.previous_secret is not None and until is not None and now < until:
            return (self.secret, self.previous_secret)
        return (self.secret,)


_UNCHANGED: Any = object()


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """A change to an endpoint: each field left ``UNCHANGED`` stays as it is (``session=None`` is a change: every
    session's events)."""

    url: str = _UNCHANGED
    events: list[str] = _UNCHANGED
    session: str | None = _UNCHANGED
    headers: Headers = _UNCHANGED
    hmac: str | None = _UNCHANGED  # None: no HMAC any more
    retries: Retries | None = _UNCHANGED  # None: the gateway's schedule again

    @staticmethod
    def given(value: object) -> bool:
        return value is not _UNCHANGED


class DeliveryState:
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one webhook endpoint: an outbox row."""

    seq: int
    webhook_id: WebhookId
    tenant_id: TenantId
    session_id: SessionId
    event_id: EventId
    event_type: str
    state: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A delivery ready to send: the row, and the exact body every attempt carries."""

    delivery: Delivery
    body: str

    @property
    def group(self) -> tuple[WebhookId, SessionId]:
        return (self.delivery.webhook_id, self.delivery.session_id)

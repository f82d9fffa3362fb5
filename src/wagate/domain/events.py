"""Events: one envelope for everything the gateway reports to tenants (history, WebSocket, webhooks).

An event is committed in the same transaction as the change it reports, so a subscriber never hears of a change
that did not happen, and no committed change goes unreported. Ids sort by time (``evt_`` + monotonic ULID).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wagate.domain.webhooks import Outgoing
from wagate.ids import ApiKeyId, EventId, SessionId, TenantId, WebhookId, new_event_id

__all__ = [
    "ALL_TYPES",
    "AnnounceListener",
    "Announced",
    "CommitListener",
    "Committed",
    "Event",
    "EventFilter",
    "EventType",
    "expand_types",
    "parse_types",
    "type_choices",
]


class EventType(StrEnum):
    SESSION_STATUS = "session.status"
    SESSION_QR = "session.qr"
    SESSION_PAIRED = "session.paired"
    SESSION_CORRUPTED = "session.corrupted"
    SESSION_RESET = "session.reset"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_ACK = "message.ack"
    ENGINE_EVENT = "engine.event"


ALL_TYPES = frozenset(EventType)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as subscribers see it. ``session`` is the session's name (as WAHA names sessions)."""

    id: EventId
    type: EventType
    tenant_id: TenantId
    session_id: SessionId
    session: str
    timestamp: float
    payload: dict[str, Any]

    @classmethod
    def new(
        cls,
        type: EventType,
        tenant_id: TenantId,
        session_id: SessionId,
        session: str,
        timestamp: float,
        payload: dict[str, Any],
    ) -> Event:
        return cls(new_event_id(), type, tenant_id, session_id, session, timestamp, payload)

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "tenant": self.tenant_id,
            "session": self.session,
            "timestamp": self.timestamp,
            "payload": self.payload,
        }

    def body(self) -> str:
        """The envelope as compact JSON: the exact bytes a webhook signs and delivers on every attempt."""
        return json.dumps(self.envelope(), separators=(",", ":"), ensure_ascii=False)


class EventFilter:
    """Which events a subscriber wants: types (``*`` or ``prefix.*`` allowed) and optionally one session name."""

    __slots__ = ("_all", "_exact", "_prefixes", "session")

    def __init__(self, types: Iterable[str] | None = None, session: str | None = None) -> None:
        wanted = list(types) if types is not None else ["*"]
        self._all = "*" in wanted or not wanted
        self._exact = frozenset(t for t in wanted if not t.endswith(".*"))
        self._prefixes = tuple(t[:-1] for t in wanted if t.endswith(".*"))
        self.session = session

    def exact_types(self) -> list[str] | None:
        """The exact types wanted; None for all of them."""
        if self._all:
            return None
        return sorted(t.value for t in EventType if self.matches_type(t.value))

    def matches_type(self, type: str) -> bool:
        if self._all or type in self._exact:
            return True
        return type.startswith(self._prefixes) if self._prefixes else False

    def matches(self, event: Event) -> bool:
        if self.session is not None and event.session != self.session:
            return False
        return self.matches_type(event.type.value)


def type_choices() -> list[str]:
    """Every type pattern ``parse_types`` takes: ``*``, each type, each ``family.*``."""
    types = sorted(t.value for t in EventType)
    return ["*", *types, *sorted({t.split(".")[0] + ".*" for t in types})]


def parse_types(raw: Iterable[str]) -> list[str]:
    """Validate event type patterns; raises ``ValueError`` naming the first unknown one."""
    known = {t.value for t in EventType}
    families = {t.value.split(".")[0] for t in EventType}
    out: list[str] = []
    for item in raw:
        item = item.strip()
        if not item:
            continue
        if item == "*" or item in known or (item.endswith(".*") and item[:-2] in families):
            out.append(item)
        else:
            raise ValueError(f"unknown event type {item!r}; known: *, {', '.join(sorted(known))}, <family>.*")
    return out


def expand_types(patterns: Iterable[str]) -> list[str] | None:
    """The exact types that validated patterns cover; None when they cover every type."""
    return EventFilter(patterns).exact_types()


@dataclass(frozen=True, slots=True)
class Committed:
    """What one transaction committed: its events and the deliveries queued for them."""

    events: list[Event]
    deliveries: list[Outgoing]


CommitListener = Callable[[Committed], None]


@dataclass(frozen=True, slots=True)
class Announced:
    """Events another process committed, as it announced them: by tenant, their sequence numbers in order; or
    webhook endpoints it changed (read them again); or API keys it revoked and tenants it deleted (close their
    WebSocket streams). None of these: the process has just begun to listen (a hello), so it is alive and has
    WebSocket clients to serve."""

    process: str
    seqs: dict[TenantId, list[int]]
    webhooks: tuple[WebhookId, ...] = ()
    revoked_keys: tuple[ApiKeyId, ...] = ()
    deleted_tenants: tuple[TenantId, ...] = ()


AnnounceListener = Callable[[Announced], None]

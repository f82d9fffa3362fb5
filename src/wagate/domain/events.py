"""Events: one envelope, WAHA's, for everything the gateway reports to tenants (history, WebSocket, webhooks).

An event is committed in the same transaction as the change it reports, so a subscriber never hears of a change
that did not happen, and no committed change goes unreported. Ids sort by time (``evt_`` + monotonic lower-case
ULID). The envelope is WAHA's ``WAHAWebhookMessage``: ``id``, ``timestamp`` (ms), ``event``, ``session``,
``metadata`` (the session's ``config.metadata``), ``me`` (WAHA's ``MeInfo``), ``payload``, ``engine`` and
``environment``, with wagate's ``tenant`` beside them. What only the store knows when it commits (``me``,
``metadata``, ``engine``, ``environment``) it stamps on the event then (:meth:`Event.stamped`). Events stored before
the envelope became WAHA's are read in it (``payloads.upgraded``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wagate.domain.webhooks import Outgoing
from wagate.ids import ApiKeyId, EventId, SessionId, TenantId, WebhookId, new_event_id

__all__ = [
    "ALL_TYPES",
    "NOT_EMITTED",
    "RENAMED",
    "AnnounceListener",
    "Announced",
    "CommitListener",
    "Committed",
    "Event",
    "EventFilter",
    "EventType",
    "Stamp",
    "compact",
    "expand_types",
    "parse_types",
    "renamed",
    "type_choices",
]


class EventType(StrEnum):
    SESSION_STATUS = "session.status"
    SESSION_QR = "session.qr"
    SESSION_PAIRED = "session.paired"
    SESSION_CORRUPTED = "session.corrupted"
    SESSION_RESET = "session.reset"
    MESSAGE = "message"  # a message someone else sent to the session
    MESSAGE_ANY = "message.any"  # stored for the session's own messages; a message.any subscriber gets ``message`` too
    MESSAGE_ACK = "message.ack"
    ENGINE_EVENT = "engine.event"


ALL_TYPES = frozenset(EventType)
# WAHA's other events: a subscription may name them (a WAHA client's config does), and hears nothing of them yet.
NOT_EMITTED = frozenset(
    {
        "message.reaction",
        "message.ack.group",
        "message.waiting",
        "message.revoked",
        "message.edited",
        "state.change",
        "group.join",
        "group.leave",
        "group.v2.join",
        "group.v2.leave",
        "group.v2.update",
        "group.v2.participants",
        "presence.update",
        "poll.vote",
        "poll.vote.failed",
        "chat.archive",
        "call.received",
        "call.accepted",
        "call.rejected",
        "label.upsert",
        "label.deleted",
        "label.chat.added",
        "label.chat.deleted",
        "event.response",
        "event.response.failed",
    }
)
# Names events had before they took WAHA's: still read from the history, refused in filters with the new name.
RENAMED = {"message.received": EventType.MESSAGE}


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # one: json.dumps makes one per call


def compact(value: Any) -> str:
    """``value`` as compact JSON, as every event body is written."""
    return _ENCODER.encode(value)


@dataclass(frozen=True, slots=True)
class Stamp:
    """What the store adds to an event as it commits it: the session's account, metadata and engine (WAHA's name),
    and the environment of the process that commits it. One stamp serves every event of a session in a commit, so
    its part of their bodies is written once (``before``: metadata and me; ``after``: engine and environment)."""

    me: dict[str, Any] | None
    metadata: dict[str, Any] | None
    engine: str | None
    environment: dict[str, Any] | None
    before: str = field(init=False, repr=False, compare=False)
    after: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "before", f'"metadata":{compact(self.metadata)},"me":{compact(self.me)},')
        object.__setattr__(
            self, "after", f',"engine":{compact(self.engine)},"environment":{compact(self.environment)},'
        )


_UNSTAMPED = Stamp(None, None, None, None)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as subscribers see it. ``session`` is the session's name (as WAHA names sessions); ``timestamp``
    in seconds (the envelope gives milliseconds); ``stamp`` once the store has committed it."""

    id: EventId
    type: EventType
    tenant_id: TenantId
    session_id: SessionId
    session: str
    timestamp: float
    payload: dict[str, Any]
    stamp: Stamp | None = None

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

    def stamped(self, stamp: Stamp) -> Event:
        return Event(
            self.id, self.type, self.tenant_id, self.session_id, self.session, self.timestamp, self.payload, stamp
        )

    def envelope(self, name: str | None = None) -> dict[str, Any]:
        """WAHA's envelope; ``name``: the event's name for this subscriber (``message.any`` for a ``message``)."""
        stamp = self.stamp
        return {
            "id": self.id,
            "timestamp": round(self.timestamp * 1000),
            "event": name or self.type.value,
            "session": self.session,
            "metadata": stamp.metadata if stamp else None,
            "me": stamp.me if stamp else None,
            "payload": self.payload,
            "engine": stamp.engine if stamp else None,
            "environment": stamp.environment if stamp else None,
            "tenant": self.tenant_id,
        }

    def body(self, name: str | None = None) -> str:
        """The envelope as compact JSON (``compact(self.envelope(name))``, put together from the stamp's parts): the
        exact bytes a webhook signs and delivers on every attempt."""
        stamp = self.stamp or _UNSTAMPED
        return (
            f'{{"id":{compact(self.id)},"timestamp":{round(self.timestamp * 1000)},'
            f'"event":{compact(name or self.type.value)},"session":{compact(self.session)},{stamp.before}'
            f'"payload":{compact(self.payload)}{stamp.after}"tenant":{compact(self.tenant_id)}}}'
        )


class EventFilter:
    """Which events a subscriber wants: types (``*``, or ``family.*``: the family and its members) and optionally
    one session name. ``message.any`` wants every message: a ``message`` (from someone else) reaches it named
    ``message.any``, unless ``message`` is wanted too (then it comes once, as ``message``)."""

    __slots__ = ("_all", "_exact", "_families", "session")

    def __init__(self, types: Iterable[str] | None = None, session: str | None = None) -> None:
        wanted = list(types) if types is not None else ["*"]
        self._all = "*" in wanted or not wanted
        self._exact = frozenset(t for t in wanted if not t.endswith(".*"))
        self._families = tuple(t[:-2] for t in wanted if t.endswith(".*"))
        self.session = session

    def exact_types(self) -> list[str] | None:
        """The exact types wanted (under any name); None for all of them."""
        if self._all:
            return None
        return sorted(t.value for t in EventType if self.name_for(t.value) is not None)

    def matches_type(self, type: str) -> bool:
        if self._all or type in self._exact:
            return True
        return any(type == family or type.startswith(family + ".") for family in self._families)

    def name_for(self, type: str) -> str | None:
        """The name an event of ``type`` has for this subscriber; None when it is not wanted."""
        if self.matches_type(type):
            return type
        if type == EventType.MESSAGE and self.matches_type(EventType.MESSAGE_ANY):
            return EventType.MESSAGE_ANY.value
        return None

    def matches(self, event: Event) -> bool:
        if self.session is not None and event.session != self.session:
            return False
        return self.name_for(event.type.value) is not None

    def renames(self, event: Event) -> str | None:
        """The name ``event`` goes by for this subscriber when it is not its own (``message.any``), else None."""
        name = self.name_for(event.type.value)
        return name if name != event.type.value else None


def type_choices() -> list[str]:
    """Every type pattern ``parse_types`` takes: ``*``, each type, each ``family.*``, WAHA's events not emitted."""
    types = sorted(t.value for t in EventType)
    return ["*", *types, *sorted({t.split(".")[0] + ".*" for t in types}), *sorted(NOT_EMITTED)]


def parse_types(raw: Iterable[str]) -> list[str]:
    """Validate event type patterns; raises ``ValueError`` naming the first unknown one (and the new name of one
    that was renamed)."""
    known = {t.value for t in EventType}
    families = {t.value.split(".")[0] for t in EventType}
    out: list[str] = []
    for item in raw:
        item = item.strip()
        if not item:
            continue
        if item == "*" or item in known or item in NOT_EMITTED or (item.endswith(".*") and item[:-2] in families):
            out.append(item)
        elif item in RENAMED:
            raise ValueError(f"event type {item!r} is now {RENAMED[item].value!r}, as WAHA names it")
        else:
            raise ValueError(
                f"unknown event type {item!r}; known: *, {', '.join(sorted(known))}, <family>.*, and WAHA's others"
            )
    return out


def renamed(body: str, name: str) -> str:
    """``body`` under another event ``name`` (``message.any``): the same bytes but for the name, on every attempt."""
    envelope = json.loads(body)
    envelope["event"] = name
    return compact(envelope)


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

"""Sessions: what a tenant wants (``Desired``), what is (``Status``), and why (``Reason``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from wagate.domain.events import Event
from wagate.ids import SessionId, TenantId

__all__ = [
    "NAME_PATTERN",
    "SECRET_MASK",
    "UNOWNED_NOTE",
    "Desired",
    "HistoryEntry",
    "HistoryKind",
    "Lease",
    "NewSession",
    "Proxy",
    "Quotas",
    "Reason",
    "Session",
    "Status",
    "StatusChange",
    "as_seen",
    "valid_session_name",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SECRET_MASK = "********"  # noqa: S105 - what answers show in place of a secret the gateway keeps sealed


class Status(StrEnum):
    """Observed state, named as WAHA names it."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    SCAN_QR_CODE = "SCAN_QR_CODE"
    WORKING = "WORKING"
    FAILED = "FAILED"


class Desired(StrEnum):
    """What the tenant asked for; the supervisor drives the session toward it."""

    RUNNING = "running"
    STOPPED = "stopped"


class Reason(StrEnum):
    """Why a session is FAILED or STOPPED (or, for ``corrupted``, back at SCAN_QR_CODE)."""

    LOGGED_OUT = "logged_out"
    CONFLICT = "conflict"
    LEASE_LOST = "lease_lost"
    CORRUPTED = "corrupted"
    MAX_RETRIES = "max_retries"
    CIRCUIT_OPEN = "circuit_open"
    IDLE = "idle"
    BANNED = "banned"
    ENGINE_ERROR = "engine_error"
    USER = "user"
    QR_TIMEOUT = "qr_timeout"


class HistoryKind(StrEnum):
    """What a history entry records."""

    CREATED = "created"
    DESIRED = "desired"
    STATUS = "status"
    CONFIG = "config"


def valid_session_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Session:
    """A session as stored. ``generation`` grows whenever it must be (re)started with new settings."""

    id: SessionId
    tenant_id: TenantId
    name: str
    engine: str
    config: dict[str, Any]
    desired: Desired
    status: Status
    reason: Reason | None
    me: dict[str, Any] | None
    generation: int
    created_at: float
    updated_at: float
    note: str | None = None
    connected_at: float | None = None  # when it last became WORKING


@dataclass(frozen=True, slots=True)
class Proxy:
    """The proxy every connection of a session goes through (WAHA's ``config.proxy``). ``server`` is ``host:port``
    (an http proxy) or a URL with its scheme; the password never shows in a repr."""

    server: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def url(self) -> str:
        """The proxy as one URL, credentials included (for the engine only: never log it)."""
        scheme, _, rest = self.server.rpartition("://")
        rest = rest.rstrip("/")
        credentials = ""
        if self.username is not None:
            credentials = quote(self.username, safe="")
            if self.password is not None:
                credentials += ":" + quote(self.password, safe="")
            credentials += "@"
        return f"{scheme or 'http'}://{credentials}{rest}"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One recorded change of a session: who, when, from, to, why."""

    id: int
    session_id: SessionId
    at: float
    kind: HistoryKind
    actor: str
    from_status: Status | None
    to_status: Status | None
    desired: Desired | None
    reason: Reason | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Quotas:
    """Session quotas applied when a session is created."""

    per_tenant: int
    total: int


UNOWNED_NOTE = "the worker that ran this session stopped renewing its lease; another worker takes it over"


def as_seen(session: Session, *, held_since: float | None) -> Session:
    """``session`` as the API shows it. A row that says ``WORKING`` or ``SCAN_QR_CODE`` speaks for the worker that
    wrote it, which must still hold the session's lease: ``held_since`` is when the live lease's holder took it
    (None when no worker holds it: released, or lapsed because its worker died). A row written before that, or
    with no holder, is ``STARTING`` (reason ``lease_lost``) until a worker takes the session over and says how it
    is."""
    if session.status not in (Status.WORKING, Status.SCAN_QR_CODE):
        return session
    if held_since is not None and held_since <= session.updated_at:
        return session
    return replace(session, status=Status.STARTING, reason=Reason.LEASE_LOST, note=UNOWNED_NOTE)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An observed status to record, by the lease holder (owner, epoch)."""

    tenant_id: TenantId
    session_id: SessionId
    owner: str
    epoch: int
    status: Status
    reason: Reason | None = None
    actor: str = "supervisor"
    me: dict[str, Any] | None = None
    clear_me: bool = False
    note: str | None = None
    detail: dict[str, Any] | None = None
    events: tuple[Event, ...] = ()  # committed with the change, and only if it applies


@dataclass(frozen=True, slots=True)
class NewSession:
    tenant_id: TenantId
    name: str
    engine: str
    config: dict[str, Any]
    desired: Desired


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: SessionId
    owner: str | None
    epoch: int
    expires_at: float
    acquired_at: float = 0.0  # when its owner took it

    def live(self, now: float) -> bool:
        """Held by a worker that renews it (not released, not lapsed)."""
        return self.owner is not None and self.expires_at > now

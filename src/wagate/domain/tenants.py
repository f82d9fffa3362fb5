"""Tenants, their API keys, and what a key may do (its scope)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from wagate.ids import ApiKeyId, TenantId

__all__ = ["ALL_ACTIONS", "WHOLE_TENANT", "Action", "ApiKey", "KeyScope", "Principal", "Role", "Tenant"]


class Role(StrEnum):
    ADMIN = "admin"  # the gateway's operator: tenants and everyone's keys; drives no session
    TENANT = "tenant"  # all of one tenant: its sessions, webhooks and keys (WAHA's ``isAdmin``)
    SCOPED = "scoped"  # part of one tenant: one session, or some actions, or both; manages nothing


class Action(StrEnum):
    """What a scoped key may do to a session: WAHA's ``SessionActionsDTO``, one name each."""

    READ = "read"  # its messages, chats, contacts, groups, events, status
    SEND = "send"  # send messages, and what a chat does (reactions, reads, typing)
    CONTROL = "control"  # start, stop, restart, log out, link (QR, pairing code), reset, restore a backup
    SETTING = "setting"  # change its config (webhooks given in it included)
    APP = "app"  # WAHA's apps; wagate has none, so it opens nothing
    DELETE = "delete"  # delete the session


ALL_ACTIONS = frozenset(Action)


@dataclass(frozen=True, slots=True)
class KeyScope:
    """The part of its tenant a scoped key reaches: one session (by name) or all, and a set of actions or all.
    A name, not an id: a key made for ``default`` before that session exists works once it does, as in WAHA."""

    session: str | None = None
    actions: frozenset[Action] | None = None

    @classmethod
    def of(cls, session: str | None, actions: Iterable[Action] | None) -> KeyScope:
        return cls(session, frozenset(actions) if actions is not None else None)

    def reaches(self, session: str) -> bool:
        return self.session is None or self.session == session

    def allows(self, action: Action) -> bool:
        return self.actions is None or action in self.actions


WHOLE_TENANT = KeyScope()  # no session named, no action left out


@dataclass(frozen=True, slots=True)
class Tenant:
    id: TenantId
    name: str
    contact_email: str | None
    max_sessions: int | None
    created_at: float
    message_retention_days: float | None = None  # None: keep messages


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: only its hash and a short display prefix are kept, never the key itself. ``revoked_at``: deleted
    for good; ``disabled_at``: switched off (WAHA's ``isActive: false``), and on again when cleared."""

    id: ApiKeyId
    tenant_id: TenantId | None
    role: Role
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None
    scope: KeyScope = WHOLE_TENANT
    disabled_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin, or one tenant through one of its keys (all of the tenant, or a scope of it)."""

    role: Role
    tenant_id: TenantId | None
    key_id: ApiKeyId | None
    scope: KeyScope = WHOLE_TENANT

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def whole_tenant(self) -> bool:
        """The tenant's own key: every session, every action, and the tenant's keys and webhooks."""
        return self.role is Role.TENANT

    def may(self, session: str, action: Action) -> bool:
        """May act on the tenant's session ``session`` with ``action``."""
        if self.role is Role.TENANT:
            return True
        return self.role is Role.SCOPED and self.scope.reaches(session) and self.scope.allows(action)

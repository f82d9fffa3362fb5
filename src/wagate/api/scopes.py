"""What each route needs from the caller's key, declared for every route in one table, and checked before any route
runs (an app-wide dependency).

Keys are the admin's (the gateway's operator), a tenant's own (all of the tenant), or scoped to part of a tenant: one
session (by name), some of WAHA's actions (``read``, ``send``, ``control``, ``setting``, ``app``, ``delete``), or both.
A route needs one of:

- ``PUBLIC``: no key (health, metrics, the dashboard's page);
- ``ANY_KEY``: any valid key (what the gateway is; a status that the route narrows to what the key reaches);
- ``ADMIN``: the admin's key (tenants, the process's environment);
- ``MANAGER``: the admin's or a tenant's own key (API keys: a scoped key never makes or widens keys);
- ``TENANT``: a tenant's own key (creating sessions, the tenant's webhooks);
- ``sessions(action)``: a tenant's key, or a scoped key with that action; the route lists only the sessions the key
  reaches (the sessions list, the event history and stream);
- ``session(action, where)``: a tenant's key, or a scoped key with that action for the session the request names:
  in the path, the query or the JSON body, WAHA's ``default`` when a query or body leaves it out.

A route missing from the table is refused (``500``, fail closed) and the tests walk every route against every kind
of key, so none can be added without a declared need.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from starlette.requests import HTTPConnection, Request

from wagate.api.deps import get_keys, identify
from wagate.api.intake import PRINCIPAL
from wagate.domain.tenants import Action, Principal, Role
from wagate.errors import ApiError, Forbidden

__all__ = [
    "ADMIN",
    "ANY_KEY",
    "MANAGER",
    "NEEDS",
    "PUBLIC",
    "TENANT",
    "Kind",
    "Need",
    "Where",
    "enforce",
    "narrowed",
    "need_of",
    "refusal",
    "session",
    "sessions",
]


class Kind(Enum):
    PUBLIC = "public"
    ANY_KEY = "any key"
    ADMIN = "admin"
    MANAGER = "admin or tenant"
    TENANT = "tenant"
    SESSIONS = "sessions"
    SESSION = "session"


class Where(Enum):
    PATH = "path"
    QUERY = "query"
    BODY = "body"


@dataclass(frozen=True, slots=True)
class Need:
    kind: Kind
    action: Action | None = None
    where: Where | None = None
    field: str = "name"

    def __str__(self) -> str:
        if self.kind is Kind.SESSION:
            return f"{self.action} on the session in the {self.where.value if self.where else '?'} ({self.field})"
        if self.kind is Kind.SESSIONS:
            return f"{self.action} on the sessions the key reaches"
        return str(self.kind.value)


PUBLIC = Need(Kind.PUBLIC)
ANY_KEY = Need(Kind.ANY_KEY)
ADMIN = Need(Kind.ADMIN)
MANAGER = Need(Kind.MANAGER)
TENANT = Need(Kind.TENANT)


def sessions(action: Action) -> Need:
    return Need(Kind.SESSIONS, action)


def session(action: Action, where: Where = Where.PATH, field: str = "name") -> Need:
    return Need(Kind.SESSION, action, where, field)


_READ = session(Action.READ)
_CONTROL = session(Action.CONTROL)
_READ_QUERY = session(Action.READ, Where.QUERY, "session")
_SEND_BODY = session(Action.SEND, Where.BODY, "session")
_CONTROL_BODY = session(Action.CONTROL, Where.BODY, "name")
# Every route: (method, path as declared) -> what its caller's key needs. "WS" is the WebSocket's method here.
NEEDS: dict[tuple[str, str], Need] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/api/dashboard/config"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/ping"): PUBLIC,
    ("GET", "/api/version"): ANY_KEY,
    ("GET", "/api/server/version"): ANY_KEY,
    ("GET", "/api/server/status"): ANY_KEY,
    ("GET", "/api/server/environment"): ADMIN,
    ("GET", "/api/tenants"): ADMIN,
    ("POST", "/api/tenants"): ADMIN,
    ("GET", "/api/tenants/{tenant_id}"): ADMIN,
    ("PATCH", "/api/tenants/{tenant_id}"): ADMIN,
    ("DELETE", "/api/tenants/{tenant_id}"): ADMIN,
    ("GET", "/api/keys"): MANAGER,
    ("POST", "/api/keys"): MANAGER,
    ("POST", "/api/keys/control"): MANAGER,
    ("PUT", "/api/keys/{key_id}"): MANAGER,
    ("DELETE", "/api/keys/{key_id}"): MANAGER,
    ("GET", "/api/sessions"): sessions(Action.READ),
    ("POST", "/api/sessions"): TENANT,
    ("GET", "/api/sessions/{name}"): _READ,
    ("PUT", "/api/sessions/{name}"): session(Action.SETTING),
    ("DELETE", "/api/sessions/{name}"): session(Action.DELETE),
    ("POST", "/api/sessions/{name}/start"): _CONTROL,
    ("POST", "/api/sessions/{name}/stop"): _CONTROL,
    ("POST", "/api/sessions/{name}/restart"): _CONTROL,
    ("POST", "/api/sessions/{name}/logout"): _CONTROL,
    ("POST", "/api/sessions/{name}/reset"): _CONTROL,
    ("GET", "/api/sessions/{name}/me"): _READ,
    ("GET", "/api/sessions/{name}/history"): _READ,
    ("GET", "/api/sessions/{name}/backups"): _READ,
    ("POST", "/api/sessions/{name}/backups/{backup_id}/restore"): _CONTROL,
    ("POST", "/api/sessions/start"): _CONTROL_BODY,
    ("POST", "/api/sessions/stop"): _CONTROL_BODY,
    ("POST", "/api/sessions/logout"): _CONTROL_BODY,
    ("GET", "/api/{name}/auth/qr"): _CONTROL,
    ("POST", "/api/{name}/auth/request-code"): _CONTROL,
    ("GET", "/api/webhooks"): TENANT,
    ("POST", "/api/webhooks"): TENANT,
    ("GET", "/api/webhooks/{webhook_id}"): TENANT,
    ("PATCH", "/api/webhooks/{webhook_id}"): TENANT,
    ("DELETE", "/api/webhooks/{webhook_id}"): TENANT,
    ("POST", "/api/webhooks/{webhook_id}/enable"): TENANT,
    ("POST", "/api/webhooks/{webhook_id}/rotate-secret"): TENANT,
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): TENANT,
    ("POST", "/api/webhooks/{webhook_id}/deliveries/{seq}/redeliver"): TENANT,
    ("POST", "/api/webhooks/{webhook_id}/redeliver"): TENANT,
    ("GET", "/api/events"): sessions(Action.READ),
    ("POST", "/api/events/ticket"): sessions(Action.READ),
    ("WS", "/ws"): sessions(Action.READ),  # checked by the route itself: a key or a ticket in the query
    ("POST", "/api/sendText"): _SEND_BODY,
    ("POST", "/api/sendImage"): _SEND_BODY,
    ("POST", "/api/sendFile"): _SEND_BODY,
    ("POST", "/api/sendVoice"): _SEND_BODY,
    ("POST", "/api/sendVideo"): _SEND_BODY,
    ("POST", "/api/sendLocation"): _SEND_BODY,
    ("POST", "/api/sendContactVcard"): _SEND_BODY,
    ("POST", "/api/sendPoll"): _SEND_BODY,
    ("PUT", "/api/reaction"): _SEND_BODY,
    ("GET", "/api/{name}/new-message-id"): session(Action.SEND),
    ("GET", "/api/{name}/chats/{chat_id}/messages"): _READ,
    ("GET", "/api/{name}/chats/{chat_id}/messages/{message_id}"): _READ,
    ("GET", "/api/{name}/messages/{message_id}"): _READ,
    ("GET", "/api/messages"): session(Action.READ, Where.QUERY, "session"),
    ("GET", "/api/{name}/chats"): _READ,
    ("GET", "/api/{name}/chats/overview"): _READ,
    ("POST", "/api/{name}/chats/overview"): _READ,
    ("GET", "/api/contacts/all"): _READ_QUERY,
    ("GET", "/api/contacts"): _READ_QUERY,
    ("GET", "/api/{name}/contacts"): _READ,
    ("GET", "/api/{name}/contacts/{contact_id}"): _READ,
    ("GET", "/api/{name}/groups"): _READ,
}


def need_of(method: str, path: str) -> Need | None:
    return NEEDS.get(("GET" if method == "HEAD" else method, path))


def refusal(principal: Principal, need: Need, session_name: str | None = None) -> ApiError | None:
    """Why ``principal`` may not call a route that needs ``need`` (on ``session_name``), or None when it may."""
    role = principal.role
    if need.kind is Kind.ANY_KEY:
        return None
    if need.kind is Kind.ADMIN:
        return None if role is Role.ADMIN else Forbidden("this route needs the admin key", code="admin_key_required")
    if role is Role.ADMIN:
        if need.kind is Kind.MANAGER:
            return None
        return Forbidden("this route acts for a tenant: use a tenant's API key", code="tenant_key_required")
    if role is Role.TENANT:
        return None
    if need.kind in (Kind.MANAGER, Kind.TENANT):
        return Forbidden(
            "this key is scoped to part of its tenant; this route needs the tenant's own key", code="key_scope"
        )
    assert need.action is not None
    if not principal.scope.allows(need.action):
        return Forbidden(f"this key may not {need.action.value}", code="key_scope")
    if session_name is not None and not principal.scope.reaches(session_name):
        return Forbidden(f"this key is for the session {principal.scope.session!r} only", code="key_scope")
    return None


def narrowed(principal: Principal, session_name: str | None) -> str | None:
    """The session a cross-session read (the event history, the stream) is to be narrowed to: the one asked for, or
    the key's own session when it is scoped to one; ``Forbidden`` when asked for another."""
    own = principal.scope.session if principal.role is Role.SCOPED else None
    if own is None:
        return session_name
    if session_name is not None and session_name != own:
        raise Forbidden(f"this key is for the session {own!r} only", code="key_scope")
    return own


async def _named_session(request: Request, need: Need) -> str | None:
    if need.where is Where.PATH:
        return str(request.path_params.get(need.field, ""))
    if need.where is Where.QUERY:
        return request.query_params.get(need.field) or "default"
    body: Any = await request.json()  # FastAPI parsed it before the dependencies: this reads its cached copy
    named = body.get(need.field) if isinstance(body, dict) else None
    return named if isinstance(named, str) and named else "default"


async def enforce(connection: HTTPConnection) -> None:
    """The app-wide dependency: finds the route's need and refuses a caller whose key does not meet it. The caller
    found is kept in the request's state, so the route's own dependencies do not look the key up again."""
    if not isinstance(connection, Request):
        return  # the WebSocket checks its key or ticket itself (the table declares its need all the same)
    request = connection  # FastAPI's own request object, whose parsed body is cached
    route = request.scope.get("route")
    need = need_of(request.method, getattr(route, "path", ""))
    if need is None:
        raise ApiError(f"{request.method} {getattr(route, 'path', '?')} declares no scope", code="undeclared_scope")
    if need.kind is Kind.PUBLIC:
        return
    principal = getattr(request.state, PRINCIPAL, None)
    if not isinstance(principal, Principal):
        principal = await identify(get_keys(request), request.headers.get("x-api-key"))
        setattr(request.state, PRINCIPAL, principal)
    named = await _named_session(request, need) if need.kind is Kind.SESSION and principal.scope.session else None
    refused = refusal(principal, need, named)
    if refused is not None:
        raise refused

"""The session API's bodies in WAHA's shapes: ``SessionCreateRequest``, ``SessionUpdateRequest``, the deprecated
``/api/sessions/start|stop|logout`` bodies, ``SessionConfig`` with every block WAHA defines, and the answers
``SessionInfo`` and ``MeInfo``. wagate's own fields (``engine``, ``desired``, ``reason`` ...) are additions whose
names WAHA does not use; a field WAHA does not define is refused (422).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator

from wagate.api.schemas import HTTP_URL, NUL_CHECK, NUL_FREE, any_case, refuse_nul
from wagate.config import ENGINE_NAMES
from wagate.domain.events import parse_types, type_choices
from wagate.domain.sessions import NAME_PATTERN, HistoryEntry, Status
from wagate.domain.webhooks import (
    HEADER_NAME,
    HEADER_VALUE,
    MAX_HEADERS,
    MAX_HMAC_KEY,
    MAX_NAME,
    MAX_RETRY_DELAY,
    MAX_VALUE,
    RESERVED,
)
from wagate.domain.webhooks import custom_headers as checked_headers

__all__ = [
    "MAX_SESSION_WEBHOOKS",
    "PROXY_SERVER",
    "ClientConfig",
    "CustomHeader",
    "GowsConfig",
    "GowsStorageConfig",
    "HistoryOut",
    "HmacConfig",
    "IgnoreConfig",
    "MeInfo",
    "NowebConfig",
    "NowebStoreConfig",
    "ProxyConfig",
    "RetriesConfig",
    "SessionConfig",
    "SessionCreate",
    "SessionInfo",
    "SessionLogoutLegacy",
    "SessionStartLegacy",
    "SessionStopLegacy",
    "SessionTimestamps",
    "SessionUpdate",
    "WebhookConfig",
    "WebjsConfig",
]

MAX_SESSION_WEBHOOKS = 10
# ``host:port`` as WAHA's example writes it, or a URL of an http(s) or SOCKS5 proxy.
PROXY_SERVER = r"^(?:(?:https?|socks5h?)://)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?/?$"

_Text = Annotated[str, StringConstraints(max_length=255), NUL_CHECK]
_NAME = Field(pattern=NAME_PATTERN.pattern, min_length=1, max_length=64, description="1-64 of A-Z a-z 0-9 _ -")
# The document's patterns (the checks themselves are custom_headers' and the SSRF guard's, with clearer messages).
_HEADER_NAME_DOC = f"^(?!(?:{'|'.join(any_case(n) for n in sorted(RESERVED))})$|{any_case('proxy-')}){HEADER_NAME}$"
_NO_EFFECT = "accepted for WAHA's clients; no effect in wagate (see the docs' list of such fields)"


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Filled(_Block):
    """A block whose defaults an answer always gives (WAHA's document requires them there)."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    def model_post_init(self, context: Any, /) -> None:
        # Every field counts as given, so that an answer made with exclude_unset still carries the defaults.
        self.__pydantic_fields_set__.update(type(self).model_fields)


class ProxyConfig(_Block):
    """The proxy every connection of the session goes through; the password is kept sealed, shown as ``********``."""

    server: str = Field(
        max_length=255, pattern=PROXY_SERVER, description="host:port (an http proxy), or http(s):// or socks5://"
    )
    username: _Text | None = None
    password: _Text | None = Field(None, description="kept sealed; answers show ******** in its place")


class IgnoreConfig(_Block):
    status: bool | None = Field(None, description="status@broadcast (stories): " + _NO_EFFECT)
    groups: bool | None = Field(None, description=_NO_EFFECT)
    channels: bool | None = Field(None, description=_NO_EFFECT)
    broadcast: bool | None = Field(None, description=_NO_EFFECT)


class ClientConfig(_Block):
    """How the phone names the linked device: ``deviceName`` names it (neonize), ``browserName`` picks its icon."""

    deviceName: _Text | None = None
    browserName: _Text | None = None


class NowebStoreConfig(_Filled):
    enabled: bool = False
    fullSync: bool = False


class NowebConfig(_Filled):
    """WAHA's NOWEB engine settings: """ + _NO_EFFECT

    markOnline: bool = True
    store: NowebStoreConfig | None = None


class GowsStorageConfig(_Block):
    messages: bool | None = None
    groups: bool | None = None
    chats: bool | None = None
    labels: bool | None = None


class GowsConfig(_Block):
    """WAHA's GOWS engine settings: """ + _NO_EFFECT

    storage: GowsStorageConfig | None = None


class WebjsConfig(_Block):
    """WAHA's WEBJS engine settings: """ + _NO_EFFECT

    tagsEventsOn: bool | None = None


class HmacConfig(_Block):
    """Deliveries carry WAHA's ``X-Webhook-Hmac``: the hex HMAC-SHA512 of the body under ``key``."""

    key: Annotated[str, StringConstraints(max_length=MAX_HMAC_KEY), NUL_CHECK] | None = Field(
        None, description="kept sealed; shown as ********; null or empty: no HMAC"
    )


class RetriesConfig(_Block):
    """The endpoint's own retry policy (as ``/api/webhooks`` takes it); absent: the gateway's schedule."""

    delaySeconds: float = Field(2, ge=0, le=MAX_RETRY_DELAY, description="seconds before the first retry")
    attempts: int = Field(15, ge=0, le=100, description="retries after the first attempt")
    policy: Literal["linear", "exponential", "constant"] = Field("constant", description="how the wait grows")


class CustomHeader(_Block):
    """A request header of the endpoint's own (checked as ``/api/webhooks`` checks them)."""

    name: str = Field(min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": _HEADER_NAME_DOC})
    value: str = Field(
        min_length=1,
        max_length=MAX_VALUE,
        description="kept sealed; shown as ********",
        json_schema_extra={"pattern": f"^{HEADER_VALUE}$"},
    )


_URL_HELP = "http(s) URL that receives the events"
_URL_IN = {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": HTTP_URL, "description": _URL_HELP}
_EVENT_NAME = "^(?:" + "|".join(re.escape(t) for t in type_choices()) + ")$"  # what parse_types takes


class WebhookConfig(_Block):
    """One of the session's webhook endpoints (the same objects as ``/api/webhooks`` lists, scoped to the session)."""

    # A request is held to the usual form of a URL; an answer may show one that /api/webhooks took (a literal IP
    # address, loopback where WAGATE_WEBHOOK_ALLOW_PRIVATE lets it), so the answer's document leaves the form out.
    url: Annotated[str, NUL_CHECK, WithJsonSchema(_URL_IN, mode="validation")] = Field(
        min_length=1, max_length=2048, description=_URL_HELP
    )
    events: list[str] = Field(
        max_length=50,
        description="event names, '*' for all or 'family.*' (as /api/webhooks takes them)",
        json_schema_extra={"items": {"type": "string", "pattern": _EVENT_NAME}},
    )
    hmac: HmacConfig | None = None
    retries: RetriesConfig | None = None
    customHeaders: list[CustomHeader] | None = Field(
        None, max_length=MAX_HEADERS, description="the endpoint's own headers; a name given twice keeps its last value"
    )

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return parse_types(value) or ["*"]  # ValueError -> 422 naming the unknown event

    @field_validator("customHeaders")
    @classmethod
    def _headers(cls, value: list[CustomHeader] | None) -> list[CustomHeader] | None:
        if value:
            # A name given twice (in any case) keeps its last value, as a header set twice does.
            checked_headers({h.name.lower(): h.value for h in value})  # ValueError -> 422 naming the header
        return value


class SessionConfig(_Block):
    """WAHA's ``SessionConfig``, and wagate's own ``idle_stop``, ``send_rate`` and ``send_burst``."""

    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="free labels, up to 50 keys; given back in every event",
        json_schema_extra={
            "maxProperties": 50,
            "propertyNames": {"maxLength": 64, "pattern": NUL_FREE},
            "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": NUL_FREE},
        },
    )
    proxy: ProxyConfig | None = None
    debug: bool = Field(False, description=_NO_EFFECT)
    ignore: IgnoreConfig | None = None
    client: ClientConfig | None = None
    noweb: NowebConfig | None = None
    gows: GowsConfig | None = None
    webjs: WebjsConfig | None = None
    webhooks: list[WebhookConfig] | None = Field(
        None, max_length=MAX_SESSION_WEBHOOKS, description="the session's webhook endpoints"
    )
    idle_stop: bool = Field(False, description="stop the session (reason idle) after WAGATE_IDLE_TIMEOUT idle")
    send_rate: float | None = Field(
        None, gt=0, le=6000, description="messages a minute this session sends at most; WAGATE_SEND_RATE when absent"
    )
    send_burst: int | None = Field(
        None, ge=1, le=1000, description="messages sent at once before the rate applies; WAGATE_SEND_BURST when absent"
    )

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 50 or any(len(k) > 64 or len(v) > 1024 for k, v in value.items()):
            raise ValueError("at most 50 keys of up to 64 characters, values up to 1024 characters")
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
        return value


_APPS = Field(None, max_length=20, description="WAHA's apps (ChatWoot, calls, MCP): " + _NO_EFFECT)


class SessionCreate(_Block):
    name: str | None = Field(
        None,
        pattern=NAME_PATTERN.pattern,
        min_length=1,
        max_length=64,
        description="1-64 of A-Z a-z 0-9 _ -; when absent, WAHA's rule: session_ and 32 hex digits",
    )
    engine: str | None = Field(
        None,
        description="engine name; the gateway's default when absent",
        json_schema_extra={"enum": [*ENGINE_NAMES, None]},
    )
    start: bool = Field(True, description="start the session right away")
    apps: list[dict[str, Any]] | None = _APPS
    config: SessionConfig = Field(default_factory=SessionConfig)


class SessionUpdate(_Block):
    """WAHA's body: the config replaces the session's (a running session restarts with it, a stopped one stays
    stopped). wagate adds ``start`` and ``stop``: ask for the session to run, or to stop, once it is updated."""

    apps: list[dict[str, Any]] | None = _APPS
    config: SessionConfig | None = Field(None, description="the new config; an empty one when absent")
    start: bool | None = Field(None, description="wagate: run the session once updated")
    stop: bool | None = Field(None, description="wagate: stop the session once updated")


class SessionStartLegacy(_Block):
    """WAHA's deprecated ``POST /api/sessions/start``: create the session (or replace its config) and start it."""

    name: str = _NAME
    config: SessionConfig | None = None


class SessionStopLegacy(_Block):
    """WAHA's deprecated ``POST /api/sessions/stop``; with ``logout`` it logs out and deletes the session."""

    name: str = _NAME
    logout: bool = False


class SessionLogoutLegacy(_Block):
    """WAHA's deprecated ``POST /api/sessions/logout``: stop, log out and delete the session."""

    name: str = _NAME


class MeInfo(BaseModel):
    """Who the session is logged in as, as WAHA gives it."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: str = Field(description="the account, N@c.us")
    lid: str | None = Field(None, description="its hidden-number id (N@lid), when known")
    jid: str | None = Field(None, description="the linked device's JID (N:D@s.whatsapp.net)")
    reachoutTimelock: None = Field(None, description="not known to wagate: always null")
    pushName: str = Field(description="the account's own name; empty when not known")


class SessionTimestamps(BaseModel):
    activity: float | None = Field(
        description="when the session last sent or received (ms since the epoch); null when its worker is another"
    )


class SessionInfo(BaseModel):
    """A session as WAHA's ``SessionInfo`` gives it, with wagate's additions. Answers leave out what was never set
    (``exclude_unset``): the config as it was given, every other field always."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    name: str
    status: Status
    config: SessionConfig
    me: MeInfo | None
    assignedWorker: str | None = Field(description="the worker that holds the session's lease; null when none")
    presence: dict[str, Any] = Field(default_factory=dict, description="empty: wagate keeps no presence yet")
    timestamps: SessionTimestamps
    apps: None = Field(None, description="always null: wagate has no apps")
    engine: str
    desired: str = Field(description="wagate: what was asked for, running or stopped")
    reason: str | None = Field(description="wagate: why the session is FAILED or STOPPED")
    note: str | None = Field(description="wagate: why the session is in this status, when there is more to say")
    created_at: float
    updated_at: float
    connected_at: float | None = Field(description="wagate: when the session last became WORKING")


class HistoryOut(BaseModel):
    id: int
    at: float
    kind: str
    actor: str
    from_status: str | None
    to_status: str | None
    desired: str | None
    reason: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryOut:
        return cls(
            id=entry.id,
            at=entry.at,
            kind=entry.kind.value,
            actor=entry.actor,
            from_status=entry.from_status.value if entry.from_status else None,
            to_status=entry.to_status.value if entry.to_status else None,
            desired=entry.desired.value if entry.desired else None,
            reason=entry.reason.value if entry.reason else None,
            detail=entry.detail,
        )

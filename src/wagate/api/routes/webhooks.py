"""``/api/webhooks``: a tenant's webhook endpoints (their deliveries and dead letters: ``deliveries``).

The signing secret (``whsec_`` + base64, Standard Webhooks) is shown once, in the answer to the creation; the store
keeps it sealed, and the endpoint's own headers and WAHA-style HMAC key too (only the headers' names are shown, and
whether there is a key). An endpoint may carry its own retry policy (WAHA's ``retries``). Another tenant's endpoint
is a 404, exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from wagate.api.deps import GatewayDep, TenantDep, get_node
from wagate.api.schemas import HTTP_URL, NUL_CHECK, NulFree, any_case, error_answers
from wagate.crypto.tokens import new_webhook_secret
from wagate.domain.events import parse_types, type_choices
from wagate.domain.sessions import NAME_PATTERN
from wagate.domain.webhooks import (
    HEADER_NAME,
    HEADER_VALUE,
    MAX_HEADERS,
    MAX_HMAC_KEY,
    MAX_NAME,
    MAX_RETRY_DELAY,
    MAX_TOTAL,
    MAX_VALUE,
    RESERVED,
    Headers,
    Retries,
    RetryPolicy,
    Webhook,
    WebhookChange,
    custom_headers,
)
from wagate.errors import NotFound, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import WEBHOOK_ID_PATTERN, TenantId, WebhookId
from wagate.net.ssrf import BlockedAddress, check_url

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_OVERLAP",
    "HmacConfig",
    "RetriesConfig",
    "SecretRotation",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookOut",
    "WebhookPath",
    "WebhookUpdate",
    "create_webhook",
    "delete_webhook",
    "enable_webhook",
    "find_webhook",
    "get_webhook",
    "list_webhooks",
    "rotate_secret",
    "router",
    "update_webhook",
]

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], responses=error_answers(401, 403, 503))

WebhookPath = Annotated[str, Path(pattern=WEBHOOK_ID_PATTERN, description="the webhook's id")]


_URL_HELP = "http(s) URL that receives the events"
_URL_DOC: dict[str, Any] = {"pattern": HTTP_URL}
_EVENTS_HELP = "event types, '*' for all or 'family.*' (e.g. 'message.*')"
_EVENTS_DOC: dict[str, Any] = {"maxItems": 50, "items": {"enum": type_choices()}}


# What custom_headers takes, for the document: names (not one the gateway writes), values, how many.
_HEADERS_DOC: dict[str, Any] = {
    "maxProperties": MAX_HEADERS,
    "propertyNames": {
        "maxLength": MAX_NAME,
        "pattern": f"^(?!(?:{'|'.join(any_case(n) for n in sorted(RESERVED))})$|{any_case('proxy-')}){HEADER_NAME}$",
    },
    "additionalProperties": {"type": "string", "maxLength": MAX_VALUE, "pattern": f"^{HEADER_VALUE}$"},
}
_SESSION = Field(None, pattern=NAME_PATTERN.pattern, max_length=64, description="only this session's events")


def _given(doc: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The document of a field that may be left out but not be null: its value's own schema, with ``doc``."""

    def edit(schema: dict[str, Any]) -> None:
        (value,) = [branch for branch in schema.pop("anyOf") if branch.get("type") != "null"]
        schema.update(value)
        schema.update(doc)

    return edit


_HEADERS_HELP = (
    "request headers of your own sent with every delivery (e.g. Authorization), up to"
    f" {MAX_HEADERS} of {MAX_TOTAL} characters in all (names are case-insensitive: each once); kept sealed, only"
    " their names are shown again"
)


MAX_ATTEMPTS = 100


class HmacConfig(BaseModel):
    """WAHA's ``HmacConfiguration``: deliveries carry ``X-Webhook-Hmac``, the hex HMAC-SHA512 of the body under
    ``key`` (with ``X-Webhook-Hmac-Algorithm: sha512``). A null or empty key: none."""

    model_config = ConfigDict(extra="forbid")

    key: NulFree | None = Field(None, max_length=MAX_HMAC_KEY, description="the HMAC key (kept sealed, never shown)")

    def given(self) -> str | None:
        return self.key or None


class RetriesConfig(BaseModel):
    """WAHA's ``RetriesConfiguration``: after a failed attempt, up to ``attempts`` more, ``delaySeconds`` apart
    (``constant``), growing by that much each time (``linear``) or doubling (``exponential``); each wait +-20%,
    at most a day. A ``Retry-After`` answer sets the next wait."""

    model_config = ConfigDict(extra="forbid")

    delaySeconds: float = Field(2, ge=0, le=MAX_RETRY_DELAY, description="seconds before the first retry")
    attempts: int = Field(15, ge=0, le=MAX_ATTEMPTS, description="retries after the first attempt")
    policy: Literal["constant", "linear", "exponential"] = Field("constant", description="how the wait grows")

    def retries(self) -> Retries:
        return Retries(self.delaySeconds, self.attempts, RetryPolicy(self.policy))

    @classmethod
    def of(cls, retries: Retries) -> RetriesConfig:
        return cls(delaySeconds=retries.delay_seconds, attempts=retries.attempts, policy=retries.policy.value)


_HMAC_HELP = "WAHA's HMAC: deliveries also carry X-Webhook-Hmac (hex HMAC-SHA512 of the body under this key)"
_RETRIES_HELP = "the endpoint's own retry policy (WAHA's); absent: the gateway's schedule (about a day)"


def _types(value: list[str]) -> list[str]:
    return parse_types(value) or ["*"]  # ValueError -> 422 naming the unknown type


def _headers(value: dict[str, str]) -> dict[str, str]:
    return dict(custom_headers(value))  # ValueError -> 422 naming the header


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: NulFree = Field(min_length=1, max_length=2048, description=_URL_HELP, json_schema_extra=_URL_DOC)
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        max_length=50,
        description=_EVENTS_HELP + "; all when absent",
        json_schema_extra=_EVENTS_DOC,
    )
    session: str | None = _SESSION
    headers: dict[str, str] = Field(default_factory=dict, description=_HEADERS_HELP, json_schema_extra=_HEADERS_DOC)
    hmac: HmacConfig | None = Field(None, description=_HMAC_HELP)
    retries: RetriesConfig | None = Field(None, description=_RETRIES_HELP)

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return _types(value)

    @field_validator("headers")
    @classmethod
    def _checked(cls, value: dict[str, str]) -> dict[str, str]:
        return _headers(value)


class WebhookUpdate(BaseModel):
    """Only what is given changes; ``"session": null`` widens the endpoint to every session, ``"headers": {}`` drops
    its headers (given headers replace all the old ones), ``"hmac": null`` its HMAC key, ``"retries": null`` its own
    retry policy."""

    model_config = ConfigDict(extra="forbid")

    # url, events and headers may be left out, not set to null: the document shows no null (given, it is refused
    # by name).
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048), NUL_CHECK] | None = Field(
        None, description=_URL_HELP, json_schema_extra=_given(_URL_DOC)
    )
    events: list[str] | None = Field(
        None, max_length=50, description=_EVENTS_HELP, json_schema_extra=_given(_EVENTS_DOC)
    )
    session: str | None = _SESSION
    headers: dict[str, str] | None = Field(None, description=_HEADERS_HELP, json_schema_extra=_given(_HEADERS_DOC))
    hmac: HmacConfig | None = Field(None, description=_HMAC_HELP)
    retries: RetriesConfig | None = Field(None, description=_RETRIES_HELP)

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _types(value)

    @field_validator("headers")
    @classmethod
    def _checked(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _headers(value)


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    session: str | None
    header_names: list[str] = Field(description="the names of the endpoint's own headers (never their values)")
    hmac: bool = Field(description="whether deliveries carry X-Webhook-Hmac (the key is never shown)")
    retries: RetriesConfig | None = Field(description="the endpoint's own retry policy; null: the gateway's schedule")
    enabled: bool
    disabled_reason: str | None
    blocked_reason: str | None = Field(
        description="why the SSRF guard refused the endpoint's address at its latest attempt (its deliveries are dead"
        " letters at once meanwhile, each event tried on its own); null once an attempt gets through"
    )
    blocked_at: float | None = Field(description="since when the guard refuses it")
    previous_secret_valid_until: float | None = Field(
        description="after a rotation: until when deliveries are signed with the previous secret too"
    )
    pending_deliveries: int = Field(description="deliveries not yet made (queued, or waiting for a retry)")
    dead_letters: int = Field(description="deliveries that used up their retries (redeliverable)")
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, webhook: Webhook, backlog: tuple[int, int] = (0, 0)) -> WebhookOut:
        return cls(
            pending_deliveries=backlog[0],
            dead_letters=backlog[1],
            id=webhook.id,
            url=webhook.url,
            events=webhook.events,
            session=webhook.session,
            header_names=list(webhook.header_names),
            hmac=webhook.hmac,
            retries=RetriesConfig.of(webhook.retries) if webhook.retries else None,
            enabled=webhook.enabled,
            disabled_reason=webhook.disabled_reason,
            blocked_reason=webhook.blocked_reason,
            blocked_at=webhook.blocked_at,
            previous_secret_valid_until=webhook.previous_until,
            created_at=webhook.created_at,
            updated_at=webhook.updated_at,
        )


class WebhookCreated(WebhookOut):
    secret: str = Field(description="the signing secret, shown only this once")


MAX_OVERLAP = 7 * 86400.0


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    previous_valid_for: float = Field(
        86400.0,
        ge=0,
        le=MAX_OVERLAP,
        description="seconds the replaced secret keeps signing too (both signatures in every request), up to 7 days;"
        " 0 ends it at once (a leaked secret)",
    )


async def find_webhook(gateway: Gateway, tenant_id: TenantId, webhook_id: str) -> Webhook:
    webhook = await gateway.store.webhooks.get(tenant_id, WebhookId(webhook_id))
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found")
    return webhook


async def _endpoint_changed(request: Request, webhook_id: WebhookId) -> None:
    """The endpoint changed: this process's dispatcher, and those of the other workers, read it again before their
    next delivery to it (otherwise the others would go on with their copy for up to 30 poll intervals)."""
    await get_node(request).endpoint_changed(webhook_id)


async def _out(gateway: Gateway, webhook: Webhook) -> WebhookOut:
    """The endpoint with its backlog."""
    backlog = await gateway.store.outbox.backlog(webhook.tenant_id)
    return WebhookOut.of(webhook, backlog.get(webhook.id, (0, 0)))


@router.get("", summary="List the tenant's webhooks (never their secrets)")
async def list_webhooks(gateway: GatewayDep, tenant_id: TenantDep) -> list[WebhookOut]:
    webhooks = await gateway.store.webhooks.list_webhooks(tenant_id)
    backlog = await gateway.store.outbox.backlog(tenant_id) if webhooks else {}
    return [WebhookOut.of(w, backlog.get(w.id, (0, 0))) for w in webhooks]


def _checked_url(gateway: Gateway, url: str) -> str:
    try:
        check_url(url, allow_private=gateway.settings.webhook_allow_private)
    except BlockedAddress as exc:
        raise Unprocessable(f"url: {exc}", code="invalid_webhook_url") from None
    return url


def _pairs(headers: dict[str, str]) -> Headers:
    return tuple(headers.items())  # as the body's model left them: checked, lower-cased and sorted


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a webhook; its secret is shown once",
    responses=error_answers(400, 413, 422, 429),
)
async def create_webhook(body: WebhookCreate, gateway: GatewayDep, tenant_id: TenantDep) -> WebhookCreated:
    url = _checked_url(gateway, body.url)
    secret = new_webhook_secret()
    webhook = await gateway.store.webhooks.create(
        tenant_id,
        url,
        body.events,
        body.session,
        secret,
        limit=gateway.settings.max_webhooks_per_tenant,
        headers=_pairs(body.headers),
        hmac=body.hmac.given() if body.hmac else None,
        retries=body.retries.retries() if body.retries else None,
    )
    return WebhookCreated(**WebhookOut.of(webhook).model_dump(), secret=secret)


@router.get("/{webhook_id}", summary="Get a webhook", responses=error_answers(404, 422))
async def get_webhook(webhook_id: WebhookPath, gateway: GatewayDep, tenant_id: TenantDep) -> WebhookOut:
    return await _out(gateway, await find_webhook(gateway, tenant_id, webhook_id))


@router.patch(
    "/{webhook_id}",
    summary="Change a webhook's URL, events, session, headers, HMAC key or retries; its queue is kept",
    responses=error_answers(400, 404, 413, 422),
)
async def update_webhook(
    webhook_id: WebhookPath, body: WebhookUpdate, request: Request, gateway: GatewayDep, tenant_id: TenantDep
) -> WebhookOut:
    changed = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("url", "events", "headers"):
        if name in changed and changed[name] is None:
            raise Unprocessable(f"{name}: may be changed, not set to null", code="invalid_webhook")
    if "url" in changed:
        _checked_url(gateway, changed["url"])
    if "headers" in changed:
        changed["headers"] = _pairs(changed["headers"])
    if "hmac" in changed:
        changed["hmac"] = body.hmac.given() if body.hmac else None
    if "retries" in changed:
        changed["retries"] = body.retries.retries() if body.retries else None
    webhook = await gateway.store.webhooks.update(tenant_id, WebhookId(webhook_id), WebhookChange(**changed))
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found")
    await _endpoint_changed(request, webhook.id)
    return await _out(gateway, webhook)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook and its outbox",
    responses=error_answers(404, 422),
)
async def delete_webhook(
    webhook_id: WebhookPath, request: Request, gateway: GatewayDep, tenant_id: TenantDep
) -> Response:
    if not await gateway.store.webhooks.delete(tenant_id, WebhookId(webhook_id)):
        raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found")
    await _endpoint_changed(request, WebhookId(webhook_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/enable",
    summary="Enable a webhook again (after a 410 disabled it)",
    responses=error_answers(404, 422),
)
async def enable_webhook(
    webhook_id: WebhookPath, request: Request, gateway: GatewayDep, tenant_id: TenantDep
) -> WebhookOut:
    await find_webhook(gateway, tenant_id, webhook_id)
    webhook = await gateway.store.webhooks.set_disabled(tenant_id, WebhookId(webhook_id), None)
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found")
    await _endpoint_changed(request, webhook.id)
    return await _out(gateway, webhook)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="A new signing secret, shown once; the old one signs too a while",
    responses=error_answers(400, 404, 413, 422),
)
async def rotate_secret(
    webhook_id: WebhookPath,
    request: Request,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    body: SecretRotation | None = None,
) -> WebhookCreated:
    overlap = (body or SecretRotation()).previous_valid_for
    secret = new_webhook_secret()
    webhook = await gateway.store.webhooks.rotate_secret(
        tenant_id, WebhookId(webhook_id), secret, previous_until=gateway.clock() + overlap
    )
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id!r}", code="webhook_not_found")
    await _endpoint_changed(request, webhook.id)
    return WebhookCreated(**(await _out(gateway, webhook)).model_dump(), secret=secret)

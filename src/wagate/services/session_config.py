"""A session's config beyond its row: WAHA's ``config.webhooks`` are the session's webhook endpoints (the same
objects ``/api/webhooks`` lists, scoped to the session), ``config.proxy`` keeps its password sealed, and answers
show the config with every secret as ``********``.

The row keeps the config without ``webhooks`` (the endpoints are their own truth) and without the proxy's password
(sealed beside it). A config sent back as an answer gave it (``********`` for a proxy password or a header value)
keeps the stored secret, so a client may read a session's config, change one field and put it back.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from wagate.crypto.tokens import new_webhook_secret
from wagate.domain.sessions import SECRET_MASK
from wagate.domain.webhooks import Headers, Retries, Webhook, WebhookChange
from wagate.errors import QuotaExceeded, Unprocessable
from wagate.gateway import Gateway
from wagate.ids import SessionId, TenantId, WebhookId
from wagate.net.ssrf import BlockedAddress, check_url
from wagate.store.proxies import SEALED_FIELD, seal_password

__all__ = ["EndpointChanged", "SessionConfigs", "SessionWebhook", "WebhookPlan", "shown_config", "split_config"]

EndpointChanged = Callable[[WebhookId], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SessionWebhook:
    """One entry of WAHA's ``config.webhooks``, checked. A header value may be ``********``: the stored one."""

    url: str
    events: list[str]
    headers: Headers = ()
    hmac: str | None = None  # WAHA's HMAC key; ``********``: the stored one
    retries: Retries | None = None


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[SessionWebhook] | None]:
    """``config`` as the API's model gave it: what the row keeps (the proxy's password still in it), and the
    session's webhooks when ``webhooks`` is given (None: left as they are)."""
    kept = copy.deepcopy(config)
    given = kept.pop("webhooks", None)
    if given is None:
        return kept, None
    hooks = [
        SessionWebhook(
            url=hook["url"],
            events=list(hook["events"]),
            headers=tuple(sorted({h["name"].lower(): h["value"] for h in hook.get("customHeaders") or ()}.items())),
            hmac=(hook.get("hmac") or {}).get("key") or None,
            retries=Retries.of(hook["retries"]) if hook.get("retries") else None,
        )
        for hook in given
    ]
    return kept, hooks


def shown_config(stored: dict[str, Any], endpoints: Sequence[Webhook]) -> dict[str, Any]:
    """The config as answers give it: the session's endpoints as ``webhooks``, secrets as ``********``."""
    shown = {k: v for k, v in stored.items() if k != "proxy"}
    if isinstance(proxy := stored.get("proxy"), dict):
        shown["proxy"] = {k: v for k, v in proxy.items() if k != SEALED_FIELD}
        if SEALED_FIELD in proxy:
            shown["proxy"]["password"] = SECRET_MASK
    if endpoints:
        shown["webhooks"] = [_shown_webhook(w) for w in endpoints]
    return shown


def _shown_webhook(webhook: Webhook) -> dict[str, Any]:
    shown: dict[str, Any] = {"url": webhook.url, "events": list(webhook.events)}
    if webhook.hmac:
        shown["hmac"] = {"key": SECRET_MASK}
    if webhook.retries is not None:
        shown["retries"] = webhook.retries.as_dict()
    if webhook.header_names:
        shown["customHeaders"] = [{"name": n, "value": SECRET_MASK} for n in webhook.header_names]
    return shown


@dataclass(frozen=True, slots=True)
class WebhookPlan:
    """The changes that make a session's endpoints those of its config: (endpoint to change or None to create,
    the hook with its headers resolved), and the endpoints to delete."""

    tenant_id: TenantId
    session: str
    steps: tuple[tuple[Webhook | None, SessionWebhook], ...]
    drop: tuple[WebhookId, ...]


class SessionConfigs:
    """Applies the parts of a session's config that live beside its row."""

    def __init__(self, gateway: Gateway, endpoint_changed: EndpointChanged | None = None) -> None:
        self._gateway = gateway
        self._store = gateway.store
        self._changed = endpoint_changed

    # checks, before anything is stored -------------------------------------------------------------------------

    def check_urls(self, hooks: Sequence[SessionWebhook]) -> None:
        for hook in hooks:
            try:
                check_url(hook.url, allow_private=self._gateway.settings.webhook_allow_private)
            except BlockedAddress as exc:
                raise Unprocessable(f"config.webhooks: {exc}", code="invalid_webhook_url") from None

    async def check_room(self, tenant_id: TenantId, name: str, hooks: Sequence[SessionWebhook]) -> None:
        """The tenant's endpoint limit leaves room for ``hooks`` in place of the session's present ones."""
        limit = self._gateway.settings.max_webhooks_per_tenant
        others = [w for w in await self._store.webhooks.list_webhooks(tenant_id) if w.session != name]
        if len(others) + len(hooks) > limit:
            raise QuotaExceeded(
                f"this tenant has reached its limit of {limit} webhooks; delete one first", code="webhook_limit"
            )

    # the proxy ---------------------------------------------------------------------------------------------------

    @staticmethod
    def without_password(config: dict[str, Any]) -> dict[str, Any]:
        proxy = config.get("proxy")
        if not isinstance(proxy, dict):
            return config
        return {**config, "proxy": {k: v for k, v in proxy.items() if k != "password"}}

    @staticmethod
    def password_of(config: dict[str, Any]) -> str | None:
        proxy = config.get("proxy")
        return proxy.get("password") if isinstance(proxy, dict) else None

    async def sealed(
        self, tenant_id: TenantId, session_id: SessionId, config: dict[str, Any], before: dict[str, Any] | None
    ) -> dict[str, Any]:
        """``config`` as the row keeps it: the proxy's password sealed (``********``: the one ``before`` has)."""
        proxy = config.get("proxy")
        if not isinstance(proxy, dict) or "password" not in proxy:
            return config
        kept = self.without_password(config)
        password = proxy["password"]
        if password == SECRET_MASK:
            previous = (before or {}).get("proxy")
            if not isinstance(previous, dict) or SEALED_FIELD not in previous:
                raise Unprocessable(
                    "config.proxy.password: ******** stands for the stored password, and there is none",
                    code="invalid_config",
                )
            kept["proxy"][SEALED_FIELD] = previous[SEALED_FIELD]
        else:
            kept["proxy"][SEALED_FIELD] = await seal_password(self._gateway.vaults, tenant_id, session_id, password)
        return kept

    # the webhooks ------------------------------------------------------------------------------------------------

    async def endpoints(self, tenant_id: TenantId) -> dict[str, list[Webhook]]:
        """The tenant's endpoints scoped to a session, by session name (oldest first)."""
        found: dict[str, list[Webhook]] = {}
        for webhook in await self._store.webhooks.list_webhooks(tenant_id):
            if webhook.session is not None:
                found.setdefault(webhook.session, []).append(webhook)
        return found

    async def plan_webhooks(self, tenant_id: TenantId, name: str, hooks: Sequence[SessionWebhook]) -> WebhookPlan:
        """What making ``hooks`` the session's endpoints takes, checked before anything is stored: an endpoint
        already there at the same URL is changed in place (its secret and its queue stay), the others are created,
        and the session's endpoints not given are deleted."""
        self.check_urls(hooks)
        await self.check_room(tenant_id, name, hooks)
        present = (await self.endpoints(tenant_id)).get(name, [])
        steps: list[tuple[Webhook | None, SessionWebhook]] = []
        for hook in hooks:
            same = next((w for w in present if w.url == hook.url), None)
            if same is not None:
                present.remove(same)
            headers, hmac = await self._secrets(same, hook)
            steps.append((same, replace(hook, headers=headers, hmac=hmac)))
        return WebhookPlan(tenant_id, name, tuple(steps), tuple(w.id for w in present))

    async def apply(self, plan: WebhookPlan) -> None:
        for gone in plan.drop:  # first: their places count toward the tenant's limit
            await self._drop(plan.tenant_id, gone)
        for same, hook in plan.steps:
            if same is None:
                await self._store.webhooks.create(
                    plan.tenant_id,
                    hook.url,
                    hook.events,
                    plan.session,
                    new_webhook_secret(),
                    limit=self._gateway.settings.max_webhooks_per_tenant,
                    headers=hook.headers,
                    hmac=hook.hmac,
                    retries=hook.retries,
                )
                continue
            change = WebhookChange(events=hook.events, headers=hook.headers, hmac=hook.hmac, retries=hook.retries)
            if await self._store.webhooks.update(plan.tenant_id, same.id, change) is not None:
                await self._notify(same.id)

    async def drop_webhooks(self, tenant_id: TenantId, name: str) -> None:
        """Delete the session's endpoints (the session is deleted)."""
        for webhook in (await self.endpoints(tenant_id)).get(name, []):
            await self._drop(tenant_id, webhook.id)

    async def _secrets(self, endpoint: Webhook | None, hook: SessionWebhook) -> tuple[Headers, str | None]:
        """The hook's headers and HMAC key, each ``********`` replaced by the endpoint's stored value."""
        masked = hook.hmac == SECRET_MASK or any(value == SECRET_MASK for _, value in hook.headers)
        if not masked:
            return hook.headers, hook.hmac
        opened = await self._store.webhooks.secret_all_tenants(endpoint.id) if endpoint is not None else None
        stored: dict[str, str] = dict(opened.headers) if opened is not None else {}
        hmac = hook.hmac
        if hmac == SECRET_MASK:
            hmac = opened.hmac_key if opened is not None else None
            if hmac is None:
                raise Unprocessable(
                    "config.webhooks: hmac.key: ******** stands for the stored key, and there is none",
                    code="invalid_webhook",
                )
        headers = []
        for name, value in hook.headers:
            if value == SECRET_MASK:
                if name not in stored:
                    raise Unprocessable(
                        f"config.webhooks: header {name!r}: ******** stands for its stored value, and there is none",
                        code="invalid_webhook",
                    )
                value = stored[name]
            headers.append((name, value))
        return tuple(headers), hmac

    async def _drop(self, tenant_id: TenantId, webhook_id: WebhookId) -> None:
        if await self._store.webhooks.delete(tenant_id, webhook_id):
            await self._notify(webhook_id)

    async def _notify(self, webhook_id: WebhookId) -> None:
        if self._changed is not None:
            await self._changed(webhook_id)

"""Webhook endpoints in SQL: their URL, filters, secrets, headers and HMAC key (sealed), retry policy, and why one is
disabled or blocked.

Their deliveries (the outbox) are in ``deliveries``; the rows are made by ``writer.EventWriter`` with the events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from wagate.clock import Clock
from wagate.domain.webhooks import Endpoint, Headers, Retries, Webhook, WebhookChange
from wagate.errors import QuotaExceeded
from wagate.ids import TenantId, WebhookId, new_webhook_id
from wagate.store.contracts.auth import Sealer
from wagate.store.contracts.webhooks import WebhookStore
from wagate.store.sql import schema
from wagate.store.sql.db import Database
from wagate.store.sql.prepared import Prepared, Tx, record_type

__all__ = ["D", "SqlWebhookStore", "W"]

W = schema.webhooks
_OF_TENANT = Prepared(
    lambda _: select(W).where(W.c.tenant_id == bindparam("tenant_id")).order_by(W.c.id), ["tenant_id"]
)
_WEBHOOK_ROW = record_type(W)
D = schema.webhook_deliveries


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=WebhookId(row.id),
        tenant_id=TenantId(row.tenant_id),
        url=row.url,
        events=json.loads(row.events),
        session=row.session_name,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        header_names=tuple(json.loads(row.header_names)) if row.header_names else (),
        updated_at=row.updated_at,
        previous_until=row.previous_until if row.previous_secret is not None else None,
        blocked_reason=row.blocked_reason,
        blocked_at=row.blocked_at,
        hmac=row.hmac is not None,
        retries=Retries.of(json.loads(row.retries)) if row.retries else None,
    )


_SECRET, _HEADERS, _PREVIOUS = "webhook-secret", "webhook-headers", "webhook-previous-secret"
_HMAC = "webhook-hmac"


@dataclass(frozen=True, slots=True)
class _Opened:
    """An endpoint's sealed columns, opened."""

    secret: bytes
    headers: bytes | None = None  # JSON
    previous: bytes | None = None
    hmac: bytes | None = None


def _header_columns(headers: Headers) -> tuple[str | None, bytes | None]:
    """(names as JSON, names and values as JSON) of an endpoint's headers, or NULLs for none."""
    if not headers:
        return None, None
    return json.dumps([name for name, _ in headers]), json.dumps(headers).encode()


def _retries_column(retries: Retries | None) -> str | None:
    return json.dumps(retries.as_dict()) if retries is not None else None


class SqlWebhookStore(WebhookStore):
    def __init__(self, db: Database, clock: Clock, sealer: Sealer) -> None:
        self._db = db
        self._clock = clock
        self._sealer = sealer

    def _seal(self, tenant_id: str, webhook_id: str, opened: _Opened) -> dict[str, Any]:
        """The sealed columns, all under the active key (the row's one ``kek_id``)."""
        kek_id, sealed = self._sealer.seal(opened.secret, _SECRET, tenant_id, webhook_id)
        values: dict[str, Any] = {
            "kek_id": kek_id,
            "secret": sealed,
            "headers": None,
            "previous_secret": None,
            "hmac": None,
        }
        for column, purpose, plain in (
            ("headers", _HEADERS, opened.headers),
            ("previous_secret", _PREVIOUS, opened.previous),
            ("hmac", _HMAC, opened.hmac),
        ):
            if plain is not None:
                key, values[column] = self._sealer.seal(plain, purpose, tenant_id, webhook_id)
                if key != kek_id:
                    raise RuntimeError("the active key changed while an endpoint was being sealed")
        return values

    def _open(self, row: Any) -> _Opened:
        def open_(sealed: bytes | None, purpose: str) -> bytes | None:
            return None if sealed is None else self._sealer.open(row.kek_id, sealed, purpose, row.tenant_id, row.id)

        secret = self._sealer.open(row.kek_id, row.secret, _SECRET, row.tenant_id, row.id)
        return _Opened(
            secret, open_(row.headers, _HEADERS), open_(row.previous_secret, _PREVIOUS), open_(row.hmac, _HMAC)
        )

    async def create(
        self,
        tenant_id: TenantId,
        url: str,
        events: list[str],
        session: str | None,
        secret: str,
        *,
        limit: int,
        headers: Headers = (),
        hmac: str | None = None,
        retries: Retries | None = None,
    ) -> Webhook:
        webhook_id = new_webhook_id()
        now = self._clock()
        names, plain = _header_columns(headers)
        key = hmac.encode() if hmac is not None else None
        sealed = self._seal(tenant_id, webhook_id, _Opened(secret.encode(), plain, hmac=key))
        async with self._db.write() as conn:
            count = (
                await conn.execute(select(func.count()).select_from(W).where(W.c.tenant_id == tenant_id))
            ).scalar_one()
            if count >= limit:
                raise QuotaExceeded(
                    f"this tenant has reached its limit of {limit} webhooks; delete one first", code="webhook_limit"
                )
            await conn.execute(
                insert(W).values(
                    id=webhook_id,
                    tenant_id=tenant_id,
                    url=url,
                    events=json.dumps(events),
                    session_name=session,
                    header_names=names,
                    retries=_retries_column(retries),
                    created_at=now,
                    updated_at=now,
                    **sealed,
                )
            )
        names_only = tuple(n for n, _ in headers)
        return Webhook(
            webhook_id,
            tenant_id,
            url,
            events,
            session,
            None,
            now,
            names_only,
            now,
            hmac=key is not None,
            retries=retries,
        )

    async def update(self, tenant_id: TenantId, webhook_id: WebhookId, change: WebhookChange) -> Webhook | None:
        values: dict[str, Any] = {"updated_at": self._clock()}
        if change.given(change.url):
            values["url"] = change.url
        if change.given(change.events):
            values["events"] = json.dumps(change.events)
        if change.given(change.session):
            values["session_name"] = change.session
        if change.given(change.retries):
            values["retries"] = _retries_column(change.retries)
        mine = (W.c.tenant_id == tenant_id, W.c.id == webhook_id)
        async with self._db.write() as conn:
            if change.given(change.headers) or change.given(change.hmac):
                row = (await conn.execute(select(W).where(*mine))).first()
                if row is None:
                    return None
                opened = self._open(row)
                if change.given(change.headers):
                    names, plain = _header_columns(change.headers)
                    opened = replace(opened, headers=plain)
                    values["header_names"] = names
                if change.given(change.hmac):
                    opened = replace(opened, hmac=change.hmac.encode() if change.hmac is not None else None)
                values.update(self._seal(tenant_id, webhook_id, opened))
            await conn.execute(update(W).where(*mine).values(**values))
            row = (await conn.execute(select(W).where(*mine))).first()
        return _webhook(row) if row else None

    async def rotate_secret(
        self, tenant_id: TenantId, webhook_id: WebhookId, secret: str, *, previous_until: float
    ) -> Webhook | None:
        now = self._clock()
        mine = (W.c.tenant_id == tenant_id, W.c.id == webhook_id)
        async with self._db.write() as conn:
            row = (await conn.execute(select(W).where(*mine))).first()
            if row is None:
                return None
            before = self._open(row)
            keep = previous_until > now
            opened = _Opened(secret.encode(), before.headers, before.secret if keep else None, before.hmac)
            values = self._seal(tenant_id, webhook_id, opened)
            values.update(previous_until=previous_until if keep else None, updated_at=now)
            await conn.execute(update(W).where(*mine).values(**values))
            row = (await conn.execute(select(W).where(*mine))).first()
        return _webhook(row) if row else None

    async def list_webhooks(self, tenant_id: TenantId) -> list[Webhook]:
        rows = await self._db.run_read(lambda conn: Tx(conn).fetch(_OF_TENANT, [tenant_id]))  # sessions shown
        return [_webhook(_WEBHOOK_ROW(row)) for row in rows]

    async def get(self, tenant_id: TenantId, webhook_id: WebhookId) -> Webhook | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(W).where(W.c.tenant_id == tenant_id, W.c.id == webhook_id))).first()
        return _webhook(row) if row else None

    async def delete(self, tenant_id: TenantId, webhook_id: WebhookId) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(delete(W).where(W.c.tenant_id == tenant_id, W.c.id == webhook_id))
            if not result.rowcount:
                return False
            await conn.execute(delete(D).where(D.c.webhook_id == webhook_id))
        return True

    async def set_disabled(self, tenant_id: TenantId, webhook_id: WebhookId, reason: str | None) -> Webhook | None:
        async with self._db.write() as conn:
            await conn.execute(
                update(W)
                .where(W.c.tenant_id == tenant_id, W.c.id == webhook_id)
                .values(disabled_reason=reason, updated_at=self._clock())
            )
            row = (await conn.execute(select(W).where(W.c.tenant_id == tenant_id, W.c.id == webhook_id))).first()
        return _webhook(row) if row else None

    async def set_blocked(self, tenant_id: TenantId, webhook_id: WebhookId, reason: str | None) -> bool:
        at = self._clock() if reason is not None else None
        async with self._db.write() as conn:
            result = await conn.execute(
                update(W)
                .where(W.c.tenant_id == tenant_id, W.c.id == webhook_id, W.c.blocked_reason.is_distinct_from(reason))
                .values(blocked_reason=reason, blocked_at=at)
            )
        return bool(result.rowcount)

    async def reseal_all_tenants(self, active_key: str) -> int:
        async with self._db.write() as conn:
            rows = (
                await conn.execute(
                    select(
                        W.c.id, W.c.tenant_id, W.c.kek_id, W.c.secret, W.c.headers, W.c.previous_secret, W.c.hmac
                    ).where(W.c.kek_id != active_key)
                )
            ).all()
            for row in rows:
                sealed = self._seal(row.tenant_id, row.id, self._open(row))
                await conn.execute(update(W).where(W.c.id == row.id).values(**sealed))
        return len(rows)

    async def secret_all_tenants(self, webhook_id: WebhookId) -> Endpoint | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(W).where(W.c.id == webhook_id))).first()
        if row is None:
            return None
        opened = self._open(row)
        pairs: Headers = tuple((name, value) for name, value in json.loads(opened.headers)) if opened.headers else ()
        previous = opened.previous.decode() if opened.previous is not None else None
        key = opened.hmac.decode() if opened.hmac is not None else None
        return Endpoint(_webhook(row), opened.secret.decode(), pairs, previous, key)

"""Tenants and API keys in SQL.

On PostgreSQL, revoking a key or deleting a tenant tells every process in the same transaction (a notification
delivered at the commit), so that their WebSocket streams of it close: no crash between the commit and the notice
can lose it."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from wagate.clock import Clock
from wagate.domain.tenants import WHOLE_TENANT, Action, ApiKey, KeyScope, Role, Tenant
from wagate.errors import AlreadyExists, Conflict
from wagate.ids import ApiKeyId, TenantId, new_api_key_id, new_tenant_id
from wagate.store.contracts.accounts import ApiKeyStore, TenantStore
from wagate.store.sql import schema
from wagate.store.sql.announcements import tell_revoked
from wagate.store.sql.db import Database
from wagate.store.sql.prepared import Prepared, Tx, record_type

__all__ = ["K", "SqlApiKeyStore", "SqlTenantStore", "T"]

T = schema.tenants
K = schema.api_keys
_WORKING = (K.c.revoked_at.is_(None), K.c.disabled_at.is_(None))  # a key that opens the API
_FIND_ACTIVE = Prepared(lambda _: select(K).where(K.c.key_hash == bindparam("key_hash"), *_WORKING), ["key_hash"])
_KEY_ROW = record_type(K)


def _tenant(row: Any) -> Tenant:
    return Tenant(
        TenantId(row.id), row.name, row.contact_email, row.max_sessions, row.created_at, row.message_retention_days
    )


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=ApiKeyId(row.id),
        tenant_id=TenantId(row.tenant_id) if row.tenant_id else None,
        role=Role(row.role),
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        scope=KeyScope.of(row.session, [Action(a) for a in json.loads(row.actions)] if row.actions else None),
        disabled_at=row.disabled_at,
    )


def _actions(scope: KeyScope) -> str | None:
    return json.dumps(sorted(scope.actions)) if scope.actions is not None else None


class SqlTenantStore(TenantStore):
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, name: str, *, contact_email: str | None, max_sessions: int | None) -> Tenant:
        tenant = Tenant(new_tenant_id(), name, contact_email, max_sessions, self._clock())
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    insert(T).values(
                        id=tenant.id,
                        name=name,
                        contact_email=contact_email,
                        max_sessions=max_sessions,
                        created_at=tenant.created_at,
                    )
                )
        except IntegrityError:
            raise AlreadyExists(f"a tenant named {name!r} exists") from None
        return tenant

    async def get(self, tenant_id: TenantId) -> Tenant | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(T).where(T.c.id == tenant_id))).first()
        return _tenant(row) if row else None

    async def update(self, tenant_id: TenantId, changes: dict[str, Any]) -> Tenant | None:
        allowed = {"max_sessions", "message_retention_days", "contact_email"}
        values = {k: v for k, v in changes.items() if k in allowed}
        async with self._db.write() as conn:
            if values:
                await conn.execute(update(T).where(T.c.id == tenant_id).values(**values))
            row = (await conn.execute(select(T).where(T.c.id == tenant_id))).first()
        return _tenant(row) if row else None

    async def list_all(self) -> list[Tenant]:
        async with self._db.read() as conn:
            rows = (await conn.execute(select(T).order_by(T.c.created_at, T.c.id))).all()
        return [_tenant(row) for row in rows]

    async def delete(self, tenant_id: TenantId) -> bool:
        async with self._db.write() as conn:
            count = (
                await conn.execute(
                    select(func.count()).select_from(schema.sessions).where(schema.sessions.c.tenant_id == tenant_id)
                )
            ).scalar_one()
            if count:
                raise Conflict(
                    f"the tenant still has {count} session(s): delete them first", code="tenant_has_sessions"
                )
            await conn.execute(delete(K).where(K.c.tenant_id == tenant_id))
            result = await conn.execute(delete(T).where(T.c.id == tenant_id))
            if result.rowcount and self._db.dialect == "postgresql":
                await tell_revoked(conn, self._db.schema, tenants=[tenant_id])
        return bool(result.rowcount)


class SqlApiKeyStore(ApiKeyStore):
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(
        self,
        *,
        tenant_id: TenantId | None,
        role: Role,
        name: str,
        key_hash: str,
        prefix: str,
        scope: KeyScope = WHOLE_TENANT,
        disabled: bool = False,
    ) -> ApiKey:
        now = self._clock()
        key = ApiKey(new_api_key_id(), tenant_id, role, name, prefix, now, None, scope, now if disabled else None)
        async with self._db.write() as conn:
            await conn.execute(
                insert(K).values(
                    id=key.id,
                    tenant_id=tenant_id,
                    role=role.value,
                    name=name,
                    prefix=prefix,
                    key_hash=key_hash,
                    created_at=key.created_at,
                    session=scope.session,
                    actions=_actions(scope),
                    disabled_at=key.disabled_at,
                )
            )
        return key

    async def find_active(self, key_hash: str) -> ApiKey | None:
        rows = await self._db.run_read(lambda conn: Tx(conn).fetch(_FIND_ACTIVE, [key_hash]))  # API requests'
        return _key(_KEY_ROW(rows[0])) if rows else None

    async def get(self, key_id: ApiKeyId, *, tenant_id: TenantId | None) -> ApiKey | None:
        query = select(K).where(K.c.id == key_id, K.c.revoked_at.is_(None))
        if tenant_id is not None:
            query = query.where(K.c.tenant_id == tenant_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return _key(row) if row else None

    async def update(
        self,
        key_id: ApiKeyId,
        *,
        tenant_id: TenantId | None,
        role: Role,
        scope: KeyScope,
        active: bool,
    ) -> ApiKey | None:
        now = self._clock()
        query = (
            update(K)
            .where(K.c.id == key_id, K.c.revoked_at.is_(None), K.c.role != Role.ADMIN.value)
            .values(
                role=role.value,
                session=scope.session,
                actions=_actions(scope),
                disabled_at=None if active else func.coalesce(K.c.disabled_at, now),
            )
        )
        if tenant_id is not None:
            query = query.where(K.c.tenant_id == tenant_id)
        async with self._db.write() as conn:
            result = await conn.execute(query)
            if result.rowcount and self._db.dialect == "postgresql":
                # A key narrowed or switched off closes its streams everywhere; they reopen under the new scope.
                await tell_revoked(conn, self._db.schema, keys=[key_id])
            row = (await conn.execute(select(K).where(K.c.id == key_id))).first() if result.rowcount else None
        return _key(row) if row else None

    async def list_keys(self, tenant_id: TenantId | None) -> list[ApiKey]:
        query = select(K).where(K.c.revoked_at.is_(None)).order_by(K.c.created_at, K.c.id)
        if tenant_id is not None:
            query = query.where(K.c.tenant_id == tenant_id)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_key(row) for row in rows]

    async def revoke(self, key_id: ApiKeyId, *, tenant_id: TenantId | None) -> bool:
        # Idempotent: revoking a revoked key keeps its first revocation time and still counts as found.
        query = update(K).where(K.c.id == key_id).values(revoked_at=func.coalesce(K.c.revoked_at, self._clock()))
        if tenant_id is not None:
            query = query.where(K.c.tenant_id == tenant_id)
        async with self._db.write() as conn:
            result = await conn.execute(query)
            if result.rowcount and self._db.dialect == "postgresql":
                await tell_revoked(conn, self._db.schema, keys=[key_id])
        return bool(result.rowcount)

    async def valid_among(self, key_ids: Collection[ApiKeyId]) -> set[ApiKeyId]:
        wanted = sorted(set(key_ids))
        valid: set[ApiKeyId] = set()
        async with self._db.read() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(K.c.id).where(K.c.id.in_(chunk), *_WORKING)
                valid.update(ApiKeyId(row.id) for row in await conn.execute(query))
        return valid

    async def has_admin(self) -> bool:
        async with self._db.read() as conn:
            row = (await conn.execute(select(K.c.id).where(K.c.role == Role.ADMIN.value, *_WORKING))).first()
        return row is not None

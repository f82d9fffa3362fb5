"""The peer channel's wire format: what one process tells the others on a PostgreSQL database (notifications).

Every payload begins with the sending process's name; tab-separated groups follow: ``tenant:seq,seq...`` for
committed events, ``@`` and an endpoint's id for a changed webhook endpoint, ``-key:`` and ``-tenant:`` for a revoked
API key and a deleted tenant. A name alone is a hello. Revocations are sent by the store itself inside the
transaction that makes them (PostgreSQL delivers a notification at the commit, never for a rolled-back one), under
the name :data:`STORE`: whichever process or command revoked, every listener hears of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.events import Announced, Event
from wagate.ids import ApiKeyId, TenantId, WebhookId

__all__ = ["NOTIFY", "STORE", "announcements", "channel", "notice", "parse_announcement", "tell_revoked"]

STORE = "-"  # the sender named in notices the store sends on behalf of whoever made the change

NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_ANNOUNCE_BYTES = 7_900  # a PostgreSQL notification carries at most 8,000 bytes


def channel(schema: str | None) -> str:
    """The notification channel of one installation (one schema) on a PostgreSQL database."""
    return f"wagate_{schema or 'public'}"[:63]


def announcements(process: str, events: Sequence[Event], seqs: Sequence[int]) -> list[str]:
    """Payloads announcing committed events: ``process``, then ``tenant:seq,seq...`` groups, tab-separated, each
    payload under the size PostgreSQL allows (a large batch takes several)."""
    by_tenant: dict[str, list[str]] = {}
    for event, seq in zip(events, seqs, strict=True):
        by_tenant.setdefault(event.tenant_id, []).append(str(seq))
    payloads: list[str] = []
    current = process
    for tenant, numbers in by_tenant.items():
        for start in range(0, len(numbers), 500):
            group = f"\t{tenant}:{','.join(numbers[start : start + 500])}"
            if len(current) + len(group) > _ANNOUNCE_BYTES:
                payloads.append(current)
                current = process
            current += group
    if current != process:
        payloads.append(current)
    return payloads


_REVOKED_KEY = "-key:"
_DELETED_TENANT = "-tenant:"


def notice(
    process: str,
    webhooks: Sequence[WebhookId] = (),
    revoked_keys: Sequence[ApiKeyId] = (),
    deleted_tenants: Sequence[TenantId] = (),
) -> str:
    """A payload of changes other than events: ``@`` and a changed endpoint's id, ``-key:`` and a revoked key's,
    ``-tenant:`` and a deleted tenant's; tab-separated after the process's name (alone: a hello)."""
    groups = [f"@{w}" for w in webhooks]
    groups += [_REVOKED_KEY + k for k in revoked_keys] + [_DELETED_TENANT + t for t in deleted_tenants]
    return "\t".join([process, *groups])


def parse_announcement(payload: str) -> Announced | None:
    """The other side of :func:`announcements` and of :func:`notice`; a process's name alone is its hello. None for
    a payload that is not one."""
    process, *groups = payload.split("\t")
    if not process:
        return None
    seqs: dict[TenantId, list[int]] = {}
    webhooks: list[WebhookId] = []
    keys: list[ApiKeyId] = []
    tenants: list[TenantId] = []
    try:
        for group in groups:
            if group.startswith("@") and len(group) > 1:
                webhooks.append(WebhookId(group[1:]))
            elif group.startswith(_REVOKED_KEY) and len(group) > len(_REVOKED_KEY):
                keys.append(ApiKeyId(group[len(_REVOKED_KEY) :]))
            elif group.startswith(_DELETED_TENANT) and len(group) > len(_DELETED_TENANT):
                tenants.append(TenantId(group[len(_DELETED_TENANT) :]))
            else:
                tenant, _, numbers = group.partition(":")
                seqs.setdefault(TenantId(tenant), []).extend(int(n) for n in numbers.split(","))
    except ValueError:
        return None
    if not (seqs or webhooks or keys or tenants or not groups):
        return None
    return Announced(process, seqs, tuple(webhooks), tuple(keys), tuple(tenants))


async def tell_revoked(
    conn: AsyncConnection,
    schema: str | None,
    *,
    keys: Sequence[ApiKeyId] = (),
    tenants: Sequence[TenantId] = (),
) -> None:
    """Inside a PostgreSQL transaction that revokes these keys or deletes these tenants: the notice that makes every
    process close their WebSocket streams, delivered if and when the transaction commits."""
    payload = notice(STORE, revoked_keys=keys, deleted_tenants=tenants)
    await conn.execute(NOTIFY, {"channel": channel(schema), "payload": payload})

"""Webhook endpoints and their delivery outbox."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from wagate.domain.webhooks import Delivery, Endpoint, Headers, Outgoing, Retries, Webhook, WebhookChange
from wagate.ids import SessionId, TenantId, WebhookId

__all__ = ["OutboxStore", "WebhookStore"]


class WebhookStore(ABC):
    @abstractmethod
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
        """Raises ``QuotaExceeded`` when the tenant already has ``limit`` endpoints. ``hmac``: WAHA's HMAC key (kept
        sealed); ``retries``: the endpoint's own retry policy (None: the gateway's schedule)."""

    @abstractmethod
    async def rotate_secret(
        self, tenant_id: TenantId, webhook_id: WebhookId, secret: str, *, previous_until: float
    ) -> Webhook | None:
        """Make ``secret`` the endpoint's; the one it replaces keeps signing too until ``previous_until`` (one before
        that is forgotten). None: no such endpoint of this tenant."""

    @abstractmethod
    async def update(self, tenant_id: TenantId, webhook_id: WebhookId, change: WebhookChange) -> Webhook | None:
        """Apply ``change`` (None: no such endpoint of this tenant). Its queued deliveries stay queued, in order,
        and go to the endpoint as it now is."""

    @abstractmethod
    async def list_webhooks(self, tenant_id: TenantId) -> list[Webhook]: ...

    @abstractmethod
    async def get(self, tenant_id: TenantId, webhook_id: WebhookId) -> Webhook | None: ...

    @abstractmethod
    async def delete(self, tenant_id: TenantId, webhook_id: WebhookId) -> bool:
        """Delete an endpoint and its queued deliveries."""

    @abstractmethod
    async def set_disabled(self, tenant_id: TenantId, webhook_id: WebhookId, reason: str | None) -> Webhook | None:
        """Disable (with a reason) or enable (None) an endpoint."""

    @abstractmethod
    async def set_blocked(self, tenant_id: TenantId, webhook_id: WebhookId, reason: str | None) -> bool:
        """Record why the SSRF guard refused the endpoint's address (since now), or None once an attempt got
        through; True when that changed something (the same reason again keeps its time)."""

    @abstractmethod
    async def reseal_all_tenants(self, active_key: str) -> int:
        """Seal again under the active key every secret (and headers, HMAC key) sealed under another (key rotation); how
        many endpoints."""

    @abstractmethod
    async def secret_all_tenants(self, webhook_id: WebhookId) -> Endpoint | None:
        """System-wide, for the delivery worker: an endpoint with its signing secret, headers and HMAC key."""


class OutboxStore(ABC):
    """Webhook deliveries. A worker claims deliveries (owner, expiry) before sending; claims of a dead worker
    expire, and an earlier run of the same worker (owner prefix ``takeover``) counts as dead at once."""

    @abstractmethod
    async def claim(
        self, owner: str, *, takeover: str, ttl: float, limit: int, held: Callable[[int], bool] = lambda seq: False
    ) -> list[Outgoing]:
        """Claim due deliveries, whole groups (endpoint, session) from their oldest pending one, in order.

        A group whose oldest pending delivery is claimed by another live worker, is being sent by this one
        (``held(seq)``), or is not due yet, is left alone.
        """

    @abstractmethod
    async def pending_before(self, webhook_id: WebhookId, session_id: SessionId, seq: int) -> bool:
        """Whether an older delivery of this group is still pending."""

    @abstractmethod
    async def renew_claims(self, owner: str, ttl: float) -> None: ...

    @abstractmethod
    async def release(self, owner: str, seqs: Sequence[int]) -> None:
        """Give claimed deliveries back (the worker will not send them)."""

    @abstractmethod
    async def mark_delivered(self, seqs: Sequence[int], status: int) -> None: ...

    @abstractmethod
    async def mark_failed(
        self, seq: int, *, attempts: int, next_attempt_at: float, status: int | None, error: str, dead: bool
    ) -> None: ...

    @abstractmethod
    async def mark_refused(self, seqs: Sequence[int], error: str) -> None:
        """Dead letters at their attempt (counted), with ``error``: the SSRF guard refused the endpoint's address,
        which no retry on the schedule would mend."""

    @abstractmethod
    async def backlog(self, tenant_id: TenantId) -> dict[WebhookId, tuple[int, int]]:
        """Per endpoint of the tenant that has any: (pending deliveries, dead letters)."""

    @abstractmethod
    async def list_deliveries(
        self,
        tenant_id: TenantId,
        webhook_id: WebhookId,
        *,
        state: str | None,
        limit: int,
        before: int | None = None,
    ) -> list[Delivery]:
        """Newest first."""

    @abstractmethod
    async def redeliver(self, tenant_id: TenantId, webhook_id: WebhookId, seqs: Sequence[int] | None) -> int:
        """Queue dead deliveries again (all of the endpoint's when ``seqs`` is None); returns how many."""

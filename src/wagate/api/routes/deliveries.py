"""``/api/webhooks/{id}/deliveries`` and ``…/redeliver``: a webhook endpoint's deliveries, its dead letters, and
queueing them again. Another tenant's endpoint is a 404, exactly like a missing one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from wagate.api.deps import GatewayDep, TenantDep
from wagate.api.routes.webhooks import WebhookPath, find_webhook
from wagate.api.schemas import SQL_INT_MAX, error_answers
from wagate.domain.webhooks import Delivery, DeliveryState
from wagate.errors import NotFound
from wagate.ids import WebhookId

__all__ = ["DeliveryOut", "Redelivered", "list_deliveries", "redeliver_all", "redeliver_one", "router"]

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], responses=error_answers(401, 403, 503))


class DeliveryOut(BaseModel):
    seq: int
    event_id: str = Field(description="also the webhook-id header of every attempt")
    event_type: str
    state: str
    attempts: int
    next_attempt_at: float | None = Field(description="when the next attempt is due (pending only)")
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            seq=delivery.seq,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            state=delivery.state,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if delivery.state == DeliveryState.PENDING else None,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
        )


class Redelivered(BaseModel):
    redelivered: int = Field(description="dead letters queued again")


@router.get(
    "/{webhook_id}/deliveries",
    summary="A webhook's deliveries, newest first (state=dead: dead letters)",
    responses=error_answers(404, 422),
)
async def list_deliveries(
    webhook_id: WebhookPath,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    state: Annotated[Literal["pending", "delivered", "dead"] | None, Query(description="only this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=SQL_INT_MAX, description="page on: deliveries with a smaller seq")
    ] = None,
) -> list[DeliveryOut]:
    await find_webhook(gateway, tenant_id, webhook_id)
    deliveries = await gateway.store.outbox.list_deliveries(
        tenant_id, WebhookId(webhook_id), state=state, limit=limit, before=before
    )
    return [DeliveryOut.of(d) for d in deliveries]


@router.post(
    "/{webhook_id}/deliveries/{seq}/redeliver", summary="Queue one dead letter again", responses=error_answers(404, 422)
)
async def redeliver_one(
    webhook_id: WebhookPath, seq: Annotated[int, Path(ge=1, le=SQL_INT_MAX)], gateway: GatewayDep, tenant_id: TenantDep
) -> Redelivered:
    await find_webhook(gateway, tenant_id, webhook_id)
    count = await gateway.store.outbox.redeliver(tenant_id, WebhookId(webhook_id), [seq])
    if count == 0:
        raise NotFound(f"no dead letter {seq} for this webhook", code="dead_letter_not_found")
    return Redelivered(redelivered=count)


@router.post(
    "/{webhook_id}/redeliver", summary="Queue every dead letter of a webhook again", responses=error_answers(404, 422)
)
async def redeliver_all(webhook_id: WebhookPath, gateway: GatewayDep, tenant_id: TenantDep) -> Redelivered:
    await find_webhook(gateway, tenant_id, webhook_id)
    return Redelivered(redelivered=await gateway.store.outbox.redeliver(tenant_id, WebhookId(webhook_id), None))

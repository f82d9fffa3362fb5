"""Linking a phone: ``GET /api/{name}/auth/qr`` and ``POST /api/{name}/auth/request-code`` (WAHA's shapes)."""

from __future__ import annotations

import base64
import io
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from wagate.api.deps import GatewayDep, SupervisorDep, TenantDep, get_node
from wagate.api.forward import to_owner
from wagate.api.routes.sessions import find_session, require_supervisor
from wagate.api.schemas import error_answers
from wagate.domain.phones import PHONE
from wagate.domain.sessions import Status
from wagate.engines.base import EngineUnavailable
from wagate.errors import Unprocessable

__all__ = [
    "CodeRequest",
    "PairingCode",
    "QrImage",
    "QrValue",
    "SessionName",
    "get_qr",
    "qr_png",
    "request_code",
    "router",
]

router = APIRouter(prefix="/api/{name}/auth", tags=["auth"], responses=error_answers(401, 403, 503))
SessionName = Annotated[str, Path(description="the session's name", max_length=64)]


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    phone_number: str = Field(alias="phoneNumber", pattern=PHONE.pattern, description="E.164, e.g. +15550001")
    method: str | None = Field(None, description="accepted for WAHA compatibility; not used")


class PairingCode(BaseModel):
    code: str = Field(examples=["ABCD-EFGH"], description="type it on the phone")


def qr_png(value: str) -> bytes:
    buffer = io.BytesIO()
    segno.make_qr(value, error="l").save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()


class QrValue(BaseModel):
    value: str = Field(description="the text the QR code holds (?format=raw)")


class QrImage(BaseModel):
    mimetype: Literal["image/png"]
    data: str = Field(description="the PNG, base64")
    expiresAt: float = Field(description="when this code stops being valid (epoch seconds)")


_QR_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the PNG (the default); or JSON: ?format=raw, or Accept: application/json",
        "model": QrValue | QrImage,
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    }
}


_CODE_ANSWER: dict[int | str, dict[str, Any]] = {201: {"model": PairingCode}}


@router.get(
    "/qr",
    summary="The QR code to scan, while the session is SCAN_QR_CODE",
    response_model=None,
    responses=_QR_ANSWER | error_answers(404, 422),
)
async def get_qr(
    request: Request,
    name: SessionName,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
    format: Annotated[Literal["image", "raw"] | None, Query(description="image (PNG) or raw")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | dict[str, str | float]:
    session = await find_session(gateway, tenant_id, name)
    if session.status is not Status.SCAN_QR_CODE:
        raise Unprocessable(f"the session is {session.status.value}, not SCAN_QR_CODE", code="not_scanning")
    qr = supervisor.qr(session.id) if supervisor is not None else None
    if qr is None:
        if (forwarded := await to_owner(request, gateway, get_node(request).process, session)) is not None:
            return forwarded
        require_supervisor(supervisor)
        raise Unprocessable("no QR code is showing right now; try again in a moment", code="qr_not_ready")
    if format == "raw":
        return {"value": qr.code}
    png = qr_png(qr.code)
    # WAHA's negotiation: the picture as JSON for a client that asks for JSON, with or without format=image.
    if accept is not None and "application/json" in accept and "image/png" not in accept:
        return {"mimetype": "image/png", "data": base64.b64encode(png).decode(), "expiresAt": qr.expires_at}
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post(
    "/request-code",
    status_code=status.HTTP_201_CREATED,
    summary="A pairing code to type on the phone instead of scanning",
    response_model=None,
    responses=_CODE_ANSWER | error_answers(400, 404, 413, 422),
)
async def request_code(
    request: Request,
    name: SessionName,
    body: CodeRequest,
    gateway: GatewayDep,
    supervisor: SupervisorDep,
    tenant_id: TenantDep,
) -> Response | dict[str, str]:
    session = await find_session(gateway, tenant_id, name)
    if session.status is not Status.SCAN_QR_CODE:
        raise Unprocessable(f"the session is {session.status.value}, not SCAN_QR_CODE", code="not_scanning")
    here = supervisor is not None and supervisor.runs(session.id)
    if not here and (forwarded := await to_owner(request, gateway, get_node(request).process, session)) is not None:
        return forwarded
    running = require_supervisor(supervisor)
    try:
        code = await running.request_pairing_code(session.id, body.phone_number)
    except EngineUnavailable as exc:
        raise Unprocessable(str(exc), code="pairing_unavailable") from None
    return {"code": code}

"""The simulator over HTTP: the device WebSocket at ``/ws`` and the control API that tests and demos drive."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from wagate.domain.phones import PHONE
from wagate.engines.sim.server import Link, LinkClosed, SimError, SimServer

CONTROL_MAX_BODY = 16 * 1024 * 1024  # the control API's largest request (10,000 contacts take about 1.5 MB)

PhonePath = Annotated[str, Path(max_length=20)]
Phone = Annotated[str, Field(pattern=PHONE.pattern, description="E.164, e.g. +15550001")]


class Scan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: Phone
    qr: str = Field(min_length=1, max_length=1000)


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: Phone
    code: str = Field(min_length=8, max_length=12)


class MediaRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mimetype: str = Field(max_length=100)
    filename: str | None = Field(None, max_length=255)
    size: int = Field(ge=0)


class Inbound(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    sender: Phone = Field(alias="from")
    text: str = Field(max_length=65536)
    count: int = Field(1, ge=1, le=100_000)
    over: float = Field(0.0, ge=0, le=3600, description="spread the messages evenly over this many seconds")
    group: str | None = Field(None, max_length=64, description="a group of the device's (..@g.us): a group message")
    media: MediaRef | None = Field(None, description="the message carries a media (a reference, as WhatsApp sends)")


class ContactEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: Phone
    name: str = Field(min_length=1, max_length=100)


class Contacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacts: list[ContactEntry] = Field(min_length=1, max_length=10_000)


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, max_length=100)
    participants: list[Phone] = Field(min_length=1, max_length=1024)


class Read(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1, max_length=10_000)


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["drop", "refuse", "logout", "bad_mac", "ban", "slow"]
    duration: float = Field(30.0, ge=0, le=86_400, description="refuse, ban, slow: how long")
    delay: float = Field(5.0, ge=0, le=600, description="slow: how long each handshake waits")
    contact: Phone | None = Field(None, description="bad_mac: one contact; absent for the whole device")
    count: int = Field(1, ge=1, le=100_000, description="bad_mac: how many messages")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "sim_error", "message": message}}, status_code=status)


def create_sim_app(server: SimServer, *, manage_lifecycle: bool = True) -> FastAPI:
    """The simulator app. With ``manage_lifecycle`` it starts and stops ``server`` with the app."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await server.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await server.stop()

    app = FastAPI(title="wagate simulator", lifespan=lifespan, docs_url="/docs", redoc_url=None)

    @app.exception_handler(SimError)
    async def _sim_error(_request: Request, exc: SimError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        return _error(422, f"{'.'.join(str(p) for p in first.get('loc', ())[1:])}: {first.get('msg', 'invalid')}")

    @app.websocket("/ws")
    async def device_socket(ws: WebSocket) -> None:
        await ws.accept()

        async def receive() -> str:
            try:
                return await ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):  # RuntimeError: receiving after the close
                raise LinkClosed from None

        async def close(code: int, reason: str) -> None:
            await ws.close(code, reason)

        try:
            await server.run_link(Link(ws.send_text, close), receive)
        finally:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the peer may be gone already
                await ws.close()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "devices": len(server.devices)}

    @app.post("/phone/scan")
    async def scan(body: Scan) -> dict[str, Any]:
        device = await server.scan(body.phone, body.qr)
        return {"phone": device.phone, "device_id": device.device_id}

    @app.post("/phone/pair")
    async def pair(body: Pair) -> dict[str, Any]:
        device = await server.pair_with_code(body.phone, body.code)
        return {"phone": device.phone, "device_id": device.device_id}

    @app.post("/devices/{phone}/messages")
    async def inbound(phone: PhonePath, body: Inbound) -> dict[str, Any]:
        if body.over > 0:
            server.trickle(phone, body.sender, body.text, body.count, body.over)
            return {"queued": 0, "scheduled": body.count, "ids": []}
        media = body.media.model_dump() if body.media is not None else None
        ids = server.add_messages(phone, body.sender, body.text, body.count, group=body.group, media=media)
        return {"queued": len(ids), "ids": ids}

    @app.post("/devices/{phone}/contacts")
    async def contacts(phone: PhonePath, body: Contacts) -> dict[str, Any]:
        await server.add_contacts(phone, {c.phone: c.name for c in body.contacts})
        return {"contacts": len(server.device(phone).contacts)}

    @app.post("/devices/{phone}/groups")
    async def groups(phone: PhonePath, body: NewGroup) -> dict[str, Any]:
        return {"id": await server.add_group(phone, body.subject, body.participants)}

    @app.post("/devices/{phone}/read")
    async def read(phone: PhonePath, body: Read) -> dict[str, Any]:
        return {"read": await server.read(phone, body.ids)}

    @app.post("/devices/{phone}/faults")
    async def fault(phone: PhonePath, body: Fault) -> dict[str, Any]:
        await server.fault(
            phone, body.kind, duration=body.duration, delay=body.delay, sender=body.contact, count=body.count
        )
        return {"ok": True, **server.describe(phone)}

    @app.get("/devices/{phone}")
    async def device(phone: PhonePath) -> dict[str, Any]:
        return server.describe(phone)

    @app.get("/devices/{phone}/sent")
    async def sent(phone: PhonePath) -> list[dict[str, Any]]:
        return server.device(phone).sent

    return app

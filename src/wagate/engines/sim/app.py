"""The simulator over HTTP: the device WebSocket at ``/ws`` and the control API that tests and demos drive.

The control API reads every device's messages and drives any of them: given an ``access`` check, each request is
checked first, and it either refuses the caller (401), lets it do everything, or limits it to the devices linked by
connections of one owner (the label a connection gives in its hello; the gateway's sim engine gives its tenant's
id). Another owner's device, QR code or pairing code is answered as one that does not exist (404). ``/health`` is
open (a liveness probe); the device socket needs no key: a device logs in with its own secret, as on WhatsApp.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from wagate.domain.phones import PHONE
from wagate.engines.sim.server import Link, LinkClosed, SimError, SimServer

__all__ = [
    "CONTROL_MAX_BODY",
    "Access",
    "CardIn",
    "ContactEntry",
    "Contacts",
    "Fault",
    "Inbound",
    "MediaRef",
    "NewGroup",
    "Owner",
    "Pair",
    "Phone",
    "PhonePath",
    "PlaceIn",
    "PollIn",
    "Read",
    "Scan",
    "create_sim_app",
    "key_access",
]

CONTROL_MAX_BODY = 16 * 1024 * 1024  # the control API's largest request (10,000 contacts take about 1.5 MB)

Access = Callable[[Request], Awaitable[str | None]]
"""Checks a control request: the owner it is limited to, None for every device; raises ``SimError`` (401)."""

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


class PlaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(None, max_length=255)
    address: str | None = Field(None, max_length=255)
    live: bool = False


class CardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    vcard: str = Field(min_length=1, max_length=8192, pattern=r"(?is)^BEGIN:VCARD.*END:VCARD\s*$")


class PollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    options: list[str] = Field(min_length=2, max_length=12)
    multiple: bool = False


class Inbound(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    sender: Phone = Field(alias="from")
    text: str = Field(max_length=65536)
    count: int = Field(1, ge=1, le=100_000)
    over: float = Field(0.0, ge=0, le=3600, description="spread the messages evenly over this many seconds")
    group: str | None = Field(None, max_length=64, description="a group of the device's (..@g.us): a group message")
    media: MediaRef | None = Field(None, description="the message carries a media (a reference, as WhatsApp sends)")
    location: PlaceIn | None = Field(None, description="a place (then `text` is empty)")
    contacts: list[CardIn] | None = Field(None, min_length=1, max_length=32, description="contact cards")
    poll: PollIn | None = Field(None, description="a poll")
    from_me: bool = Field(
        False, alias="fromMe", description="the phone itself wrote it, in the chat with `from` (or in `group`)"
    )

    def content(self) -> dict[str, Any] | None:
        """The place, cards or poll as the wire carries them (what the device's engine maps to its kinds)."""
        shared = self.model_dump(include={"location", "contacts", "poll"}, exclude_none=True)
        if len(shared) > 1:
            raise SimError(422, "a message carries one of location, contacts or poll")
        return shared or None


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


def _error(status: int, message: str, code: str = "sim_error") -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _owner(request: Request) -> str | None:
    access: Access | None = request.app.state.access
    return await access(request) if access is not None else None


Owner = Annotated[str | None, Depends(_owner)]


def key_access(key: str) -> Access:
    """Every control request needs ``X-Api-Key: key`` (``wagate sim-server --key``), and may then do anything."""

    async def check(request: Request) -> str | None:
        given = request.headers.get("x-api-key")
        if not given:
            raise SimError(401, "send the simulator's key in the X-Api-Key header", "missing_api_key")
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise SimError(401, "the key is not the simulator's", "invalid_api_key")
        return None

    return check


def create_sim_app(server: SimServer, *, manage_lifecycle: bool = True, access: Access | None = None) -> FastAPI:
    """The simulator app. With ``manage_lifecycle`` it starts and stops ``server`` with the app; with ``access``,
    every control request is checked (without, the control API is open: keep it on loopback)."""

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
    app.state.access = access

    @app.exception_handler(SimError)
    async def _sim_error(_request: Request, exc: SimError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.code)

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
    async def health(request: Request) -> dict[str, Any]:
        """Open (a liveness probe); the devices are counted for a caller the access check lets in."""
        try:
            owner = await _owner(request)
        except SimError:
            return {"status": "ok"}
        return {"status": "ok", "devices": sum(owner is None or d.owner == owner for d in server.devices.values())}

    @app.get("/totals")
    async def totals(owner: Owner) -> dict[str, int]:
        """The caller's devices: how many, how many connected now, connections made, and connections replaced by
        a newer one for the same device (two clients holding it at once)."""
        return server.totals(owner)

    @app.post("/phone/scan")
    async def scan(body: Scan, owner: Owner) -> dict[str, Any]:
        device = await server.scan(body.phone, body.qr, owner)
        return {"phone": device.phone, "device_id": device.device_id}

    @app.post("/phone/pair")
    async def pair(body: Pair, owner: Owner) -> dict[str, Any]:
        device = await server.pair_with_code(body.phone, body.code, owner)
        return {"phone": device.phone, "device_id": device.device_id}

    @app.post("/devices/{phone}/messages")
    async def inbound(phone: PhonePath, body: Inbound, owner: Owner) -> dict[str, Any]:
        server.device(phone, owner)
        if body.over > 0:
            server.trickle(phone, body.sender, body.text, body.count, body.over)
            return {"queued": 0, "scheduled": body.count, "ids": []}
        media = body.media.model_dump() if body.media is not None else None
        content = body.content()
        ids = server.add_messages(
            phone,
            body.sender,
            body.text,
            body.count,
            group=body.group,
            media=media,
            content=content,
            from_me=body.from_me,
        )
        return {"queued": len(ids), "ids": ids}

    @app.post("/devices/{phone}/contacts")
    async def contacts(phone: PhonePath, body: Contacts, owner: Owner) -> dict[str, Any]:
        server.device(phone, owner)
        await server.add_contacts(phone, {c.phone: c.name for c in body.contacts})
        return {"contacts": len(server.device(phone).contacts)}

    @app.post("/devices/{phone}/groups")
    async def groups(phone: PhonePath, body: NewGroup, owner: Owner) -> dict[str, Any]:
        server.device(phone, owner)
        return {"id": await server.add_group(phone, body.subject, body.participants)}

    @app.post("/devices/{phone}/read")
    async def read(phone: PhonePath, body: Read, owner: Owner) -> dict[str, Any]:
        server.device(phone, owner)
        return {"read": await server.read(phone, body.ids)}

    @app.post("/devices/{phone}/faults")
    async def fault(phone: PhonePath, body: Fault, owner: Owner) -> dict[str, Any]:
        server.device(phone, owner)
        await server.fault(
            phone, body.kind, duration=body.duration, delay=body.delay, sender=body.contact, count=body.count
        )
        return {"ok": True, **server.describe(phone)}

    @app.get("/devices/{phone}")
    async def device(phone: PhonePath, owner: Owner) -> dict[str, Any]:
        server.device(phone, owner)
        return server.describe(phone)

    @app.get("/devices/{phone}/sent")
    async def sent(phone: PhonePath, owner: Owner) -> list[dict[str, Any]]:
        return server.device(phone, owner).sent

    return app

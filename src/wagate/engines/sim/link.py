"""What the simulator's parts share: a device's live connection (:class:`Link`), its options, its errors, its close
codes, and the small rules about phones and owners."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from wagate.domain.phones import phone_digits
from wagate.engines.sim.state import Device
from wagate.tasks import TaskSet

__all__ = [
    "CLOSE_BANNED",
    "CLOSE_DROPPED",
    "CLOSE_LOGGED_OUT",
    "CLOSE_NORMAL",
    "CLOSE_QR_TIMEOUT",
    "CLOSE_REPLACED",
    "CLOSE_TRY_LATER",
    "Link",
    "LinkClosed",
    "Registration",
    "SimError",
    "SimOptions",
    "me_of",
    "normal_phone",
    "owns",
]

# WebSocket close codes the engine understands.
CLOSE_NORMAL = 1000
CLOSE_DROPPED = 1011
CLOSE_TRY_LATER = 1013
CLOSE_REPLACED = 4409
CLOSE_LOGGED_OUT = 4401
CLOSE_BANNED = 4403
CLOSE_QR_TIMEOUT = 4408


class LinkClosed(Exception):
    """Raised by a transport's ``receive`` once the device's socket is closed."""


class SimError(Exception):
    """A control request the simulator refuses; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str, code: str = "sim_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(slots=True)
class SimOptions:
    qr_first_ttl: float = 60.0
    qr_ttl: float = 20.0
    qr_count: int = 6  # 60 + 5 x 20 s, about WhatsApp's 160 s
    window: int = 256  # unacknowledged messages in flight per connection
    batch: int = 64  # messages per frame
    flush_interval: float = 0.5


class Link:
    """One live connection: sends frames, closes, and knows its device once logged in."""

    def __init__(self, send: Callable[[str], Awaitable[None]], close: Callable[[int, str], Awaitable[None]]) -> None:
        self._send = send
        self._close = close
        self._lock = asyncio.Lock()
        self.device: Device | None = None
        self.logged_in = False
        self.closed = False
        self.unsent: collections.deque[str] = collections.deque()  # ids queued for this connection, not yet sent
        self.inflight: set[str] = set()
        self.wake = asyncio.Event()
        self.registration: Registration | None = None
        self.client: dict[str, Any] | None = None  # what the device said of itself in its hello (name, proxy)
        self.tasks = TaskSet()

    async def send(self, text: str) -> None:
        if self.closed:
            return
        async with self._lock:
            await self._send(text)

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        with contextlib.suppress(Exception):  # the peer may already be gone; closing is best effort
            await self._close(code, reason)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.spawn(coro, name)


@dataclass(slots=True)
class Registration:
    link: Link
    owner: str | None = None  # the label the connection gave in its hello; the device it links gets it
    codes: list[str] = field(default_factory=list)
    pairing: tuple[str, str] | None = None  # (phone, code)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def owns(caller: str | None, owner: str | None) -> bool:
    """Whether a caller limited to ``caller`` (None: not limited) may act on what ``owner`` linked."""
    return caller is None or caller == owner


def normal_phone(phone: str) -> str:
    return "+" + phone_digits(phone)


def me_of(device: Device) -> dict[str, Any]:
    digits = phone_digits(device.phone)
    return {
        "id": f"{device.device_id}@s.whatsapp.net",
        "phone": device.phone,
        "pushName": device.push_name,
        "user": digits,
    }

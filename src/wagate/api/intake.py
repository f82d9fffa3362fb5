"""Request bodies before any route sees them: bounded, and read only for a caller whose key is valid.

A pure ASGI middleware in front of routing (``@app.middleware("http")`` goes through Starlette's
``BaseHTTPMiddleware``; Starlette's own body limit answers only once a route reads the body, and in plain text):

- a ``Content-Length`` above the limit is answered ``413`` at once, its body unread;
- a body without one (chunked) is counted as the route reads it and answered ``413`` as soon as it passes the limit;
- a body sent to a path that needs a key gets its ``401`` before a byte of it is read when ``X-Api-Key`` is missing
  or unknown; the caller found is kept in the request's state for the route (one lookup, not two).

A refusal that leaves a body unread says ``Connection: close``: the server closes the connection instead of reading
(and dropping) whatever the client still sends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wagate.api.errors import error_response, unavailable_response
from wagate.config import Settings
from wagate.domain.tenants import Principal
from wagate.errors import ApiError, StoreUnavailable

__all__ = ["BODY_SLACK", "CLOSE", "PRINCIPAL", "BodyGate", "BodyTooLarge", "Identify", "body_limit"]

log = logging.getLogger("wagate.api")

BODY_SLACK = 64 * 1024  # a message's other fields beside its base64 media (caption, chat id, mentions...)
PRINCIPAL = "principal"  # the request state's name for the caller the gate found

Identify = Callable[[str | None], Awaitable[Principal]]


def body_limit(settings: Settings) -> int:
    """``WAGATE_MAX_BODY_BYTES``, or what the largest media takes in JSON: base64 (4 bytes for 3) plus slack."""
    if settings.max_body_bytes is not None:
        return settings.max_body_bytes
    return 4 * math.ceil(settings.media_max_bytes / 3) + BODY_SLACK


class BodyTooLarge(HTTPException):
    """Raised to the route that reads past the limit. An HTTP exception, so that FastAPI passes it on instead of
    calling it a malformed body; the gate has answered by then, and whatever the route answers goes nowhere."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {limit} bytes this route accepts")


CLOSE = {"Connection": "close"}  # the body the client still sends is not read


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    await _answer(send, error_response(status, code, message, headers=CLOSE))


async def _answer(send: Send, answer: JSONResponse) -> None:
    await send({"type": "http.response.start", "status": answer.status_code, "headers": answer.raw_headers})
    await send({"type": "http.response.body", "body": answer.body})


def _declared(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):  # the server refuses a malformed length before the app sees the request
        return None


class BodyGate:
    """The middleware. ``limit`` gives a path's largest body; ``needs_key`` tells whether a path wants a key;
    ``identify`` finds the caller of a key (raising ``Unauthorized``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: Callable[[str], int],
        needs_key: Callable[[str], bool],
        identify: Identify,
    ) -> None:
        self.app = app
        self._limit = limit
        self._needs_key = needs_key
        self._identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _declared(headers)
        if not declared and "transfer-encoding" not in headers:  # no body
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self._limit(path)
        if declared is not None and declared > limit:
            message = f"the request body ({declared} bytes) is larger than the {limit} bytes this route accepts"
            await _refuse(send, 413, "body_too_large", message)
            return
        if self._needs_key(path):
            try:
                principal = await self._identify(headers.get("x-api-key"))
            except ApiError as exc:
                await _refuse(send, exc.status_code, exc.code, exc.message)
                return
            except StoreUnavailable as exc:
                log.warning("%s %s: %s", scope.get("method"), path, exc)
                await _answer(send, unavailable_response(exc, CLOSE))
                return
            scope.setdefault("state", {})[PRINCIPAL] = principal
        counted = _Counted(receive, send, limit)
        try:
            await self.app(scope, counted.receive, counted.send)
        except BodyTooLarge:
            if not counted.refused:
                raise


class _Counted:
    """One request's body, counted as the route reads it."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive = receive
        self._send = send
        self._limit = limit
        self._total = 0
        self._started = False
        self.refused = False  # the gate answered 413

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._total += len(message.get("body", b""))
            if self._total > self._limit:
                if not self.refused and not self._started:
                    self.refused = True
                    why = f"the request body is larger than the {self._limit} bytes this route accepts"
                    await _refuse(self._send, 413, "body_too_large", why)
                raise BodyTooLarge(self._limit)
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the 413 went out: the route's own answer to the exception goes nowhere
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)

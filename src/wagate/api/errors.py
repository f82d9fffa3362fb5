"""One place that turns errors into responses: ``{"statusCode", "message", "error": {"code", "message"}}``.

``statusCode`` and ``message`` are WAHA's (its SDKs show them); ``error.code`` is wagate's, for programs.

Any other exception becomes a JSON ``500 internal_error`` too, in :class:`CatchAll`: an ``Exception`` handler given
to Starlette would answer, then raise the exception again to the server, which closes the kept-alive connection.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wagate.errors import ApiError, StoreUnavailable, WagateError

__all__ = ["STORE_RETRY_AFTER", "CatchAll", "error_response", "install_error_handlers", "unavailable_response"]

log = logging.getLogger("wagate.api")
STORE_RETRY_AFTER = 5  # seconds a client is asked to wait after a 503 for the store


def unavailable_response(exc: StoreUnavailable, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer while the store cannot be used (``storage_full`` or ``store_unavailable``): nothing was done, the
    same request can be sent again after ``Retry-After``."""
    headers = {"Retry-After": str(STORE_RETRY_AFTER), **(headers or {})}
    return error_response(503, exc.code, f"{exc}; nothing was done, try again shortly", headers)


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, object] | None = None,
) -> JSONResponse:
    body = {"statusCode": status, "message": message, "error": {"code": code, "message": message, **(details or {})}}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


class CatchAll:
    """Answers an exception that no handler took with a JSON 500, logged with its traceback, and returns normally,
    so the server keeps the connection open. Once an answer has started, it can only be cut short: the exception
    goes on to the server, which closes the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.error("unhandled %s on %s %s", type(exc).__name__, scope["method"], scope["path"], exc_info=exc)
            if started:
                raise
            await error_response(500, "internal_error", "internal error")(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(CatchAll)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.headers, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _describe(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return unavailable_response(exc)

    @app.exception_handler(WagateError)
    async def _internal(request: Request, exc: WagateError) -> JSONResponse:
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "internal error")

"""The OpenAPI document (``/openapi.json``): FastAPI's, with its answer to a request that fails validation (422)
given in the API's own error shape, as the answer really is, rather than FastAPI's list of validation errors."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

__all__ = ["install_openapi"]

_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_ERROR = {"$ref": "#/components/schemas/ErrorOut"}
_INVALID = "the request is malformed or cannot be done as asked"
_SCOPE = "the key does not reach this: the admin's where a tenant's is needed, or the other way, or a scoped key"


def _in_error_shape(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            if "401" in answers and "403" not in answers:  # wagate.api.scopes refuses a key that does not reach it
                answers["403"] = {"description": _SCOPE, "content": {"application/json": {"schema": _ERROR}}}
            answer = answers.get("422")
            if answer is not None and answer["content"]["application/json"]["schema"].get("$ref") == _FASTAPI_422:
                operation["responses"]["422"] = {
                    "description": _INVALID,
                    "content": {"application/json": {"schema": _ERROR}},
                }
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's own document, corrected (made once, on first request)."""
    made = app.openapi  # FastAPI's: everything the app declares (tags, servers, the OpenAPI version...)

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _in_error_shape(made())
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]

"""Request and response bodies (pydantic lives at the edges only)."""

from __future__ import annotations

from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field

from wagate.domain.tenants import Tenant

__all__ = [
    "EMAIL_DOC",
    "HTTP_URL",
    "NUL_CHECK",
    "NUL_FREE",
    "SQL_INT_MAX",
    "ErrorDetail",
    "ErrorOut",
    "NulFree",
    "TenantCreate",
    "TenantCreated",
    "TenantOut",
    "TenantUpdate",
    "any_case",
    "error_answers",
    "refuse_nul",
]

SQL_INT_MAX = 2**63 - 1  # the largest BIGINT: a number past it cannot even be looked up
NUL_FREE = r"^[^\x00]*$"


def refuse_nul(value: Any) -> Any:
    """No text the API takes holds U+0000: PostgreSQL cannot store it, and it means nothing in any of them."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain U+0000 (NUL)")
    return value


def any_case(word: str) -> str:
    """``word`` as a pattern that takes it in any case (the document's patterns have no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# An email address the check takes: not at a special-use domain (.test, .local, ...), where no mail goes.
_SPECIAL_USE = "|".join(any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
EMAIL_DOC: dict[str, Any] = {"pattern": f"^(?!.*[@.](?:{_SPECIAL_USE})\\.?$)"}

# The usual form of an http(s) URL, for the document: a host name (a public literal IP address is taken too).
HTTP_URL = r"^https?://[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?(?:[/?#][^\s\x00]*)?$"

# Free text: anything but U+0000 (the document says so with a pattern; the check gives the clearer message). An
# optional field spells Annotated[str, StringConstraints(...), NUL_CHECK] | None: length limits given before the
# check read as a string's.
NUL_CHECK = BeforeValidator(refuse_nul)
NulFree = Annotated[str, NUL_CHECK, Field(json_schema_extra={"pattern": NUL_FREE})]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    contact_email: EmailStr | None = Field(None, json_schema_extra=EMAIL_DOC)
    max_sessions: int | None = Field(None, ge=0, le=1_000_000, description="session quota; the default when absent")
    message_retention_days: float | None = Field(
        None, gt=0, le=36_500, description="days messages are kept; absent: kept until the session is deleted"
    )


class TenantUpdate(BaseModel):
    """Only the fields given change; ``null`` clears a quota (the default applies) or a retention (keep)."""

    model_config = ConfigDict(extra="forbid")

    contact_email: EmailStr | None = Field(None, json_schema_extra=EMAIL_DOC)
    max_sessions: int | None = Field(None, ge=0, le=1_000_000)
    message_retention_days: float | None = Field(None, gt=0, le=36_500)


class TenantOut(BaseModel):
    id: str
    name: str
    contact_email: str | None
    max_sessions: int | None
    message_retention_days: float | None
    created_at: float

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            id=tenant.id,
            name=tenant.name,
            contact_email=tenant.contact_email,
            max_sessions=tenant.max_sessions,
            message_retention_days=tenant.message_retention_days,
            created_at=tenant.created_at,
        )


class TenantCreated(TenantOut):
    api_key: str = Field(description="the tenant's first API key, shown only in this response")


class ErrorDetail(BaseModel):
    """What went wrong: ``code`` for programs, ``message`` for people; some errors add fields (a ``status``)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="machine-readable, e.g. session_not_found")
    message: str = Field(description="what went wrong, for a person")


class ErrorOut(BaseModel):
    """Every error answer of the API: WAHA's ``statusCode`` and ``message``, and wagate's ``error``."""

    status_code: int = Field(alias="statusCode", description="the HTTP status, as WAHA repeats it in the body")
    message: str = Field(description="what went wrong, for a person (the same as ``error.message``)")
    error: ErrorDetail


_ANSWERS = {
    400: "the body is not JSON text",
    401: "no API key, or not a valid one",
    403: "a valid key without the right: a tenant's key on an admin route, or the admin's on a tenant's",
    404: "no such resource for this caller (another tenant's is not found either)",
    409: "the resource is not in a state that allows this now",
    413: "the request body is too large",
    422: "the request is malformed or cannot be done as asked",
    429: "over a quota or a limit (a full queue says when to retry in Retry-After)",
    503: "the database, or the worker that runs the session, cannot be reached now; try again shortly",
}


def error_answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these error statuses, each with the error shape."""
    return {status: {"model": ErrorOut, "description": _ANSWERS[status]} for status in statuses}

"""A session's contacts and groups, in WAHA's shapes: ``GET /api/contacts/all?session=``, one contact
(``GET /api/contacts?session=&contactId=``, ``GET /api/{session}/contacts/{id}``) and ``GET /api/{session}/groups``,
arrays with WAHA's ``sortBy``, ``sortOrder``, ``limit`` and ``offset`` and wagate's ``cursor``.

``GET /api/{session}/contacts`` is wagate's older path of the same list as ``/api/contacts/all``. Contacts and
groups are what the engine reported of the account's address book and groups.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from wagate.api.cursors import IdCursor, Limit, Offset, SortOrder, link_next, read_id
from wagate.api.deps import GatewayDep, TenantDep
from wagate.api.routes.messages import SessionName, chat_id_of
from wagate.api.routes.sessions import find_session
from wagate.api.schemas import error_answers
from wagate.domain.messages import PERSON_ID_PATTERN, Contact, Group
from wagate.domain.waha import public_jid
from wagate.errors import Unprocessable
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.store.contracts.directory import NameOrder

__all__ = [
    "ContactOut",
    "GroupOut",
    "ParticipantOut",
    "all_contacts",
    "contact_by_path",
    "contact_by_query",
    "list_groups",
    "router",
    "session_contacts",
]

router = APIRouter(tags=["contacts"], responses=error_answers(401, 403, 404, 422, 503))
_PERSON_ID = {"pattern": PERSON_ID_PATTERN}
_SESSION_QUERY = Annotated[str, Query(max_length=64, description="the session's name")]


class ContactOut(BaseModel):
    id: str = Field(description="as WAHA writes it: N@c.us or ...@lid")
    number: str | None = Field(description="the phone number, for an N@c.us id")
    name: str | None = Field(description="the name in the account's address book")
    pushname: str | None = Field(description="the name the contact gave themselves")

    @classmethod
    def of(cls, contact: Contact) -> ContactOut:
        shown = public_jid(contact.id)
        number = shown.removesuffix("@c.us") if shown.endswith("@c.us") else None
        return cls(id=shown, number=number, name=contact.name, pushname=contact.push_name)


class ParticipantOut(BaseModel):
    id: str


class GroupOut(BaseModel):
    id: str
    subject: str | None
    size: int = Field(description="how many participants")
    participants: list[ParticipantOut] | None = Field(
        description="their ids (wagate keeps no roles yet); null with `exclude=participants`"
    )

    @classmethod
    def of(cls, group: Group, *, participants: bool) -> GroupOut:
        members = [ParticipantOut(id=public_jid(p)) for p in group.participants] if participants else None
        return cls(id=group.id, subject=group.subject, size=len(group.participants), participants=members)


def _cursor(order: NameOrder, cursor: str | None) -> str | None:
    if cursor is not None and order is NameOrder.NAME:
        raise Unprocessable("lists sorted by name page by offset, not by cursor", code="invalid_cursor")
    return read_id(cursor)


_Listed = TypeVar("_Listed", Contact, Group)


async def _page(
    request: Request,
    response: Response,
    lister: Callable[..., Awaitable[list[_Listed]]],
    order: NameOrder,
    sort_order: Literal["desc", "asc"] | None,
    limit: int,
    offset: int | None,
    cursor: str | None,
) -> list[_Listed]:
    """One page of a directory list (``lister``: the store's, for one session), with its ``Link`` to the next: by
    cursor in id order, by offset in name order."""
    start = offset or 0
    descending = sort_order == "desc"
    found = await lister(limit=limit, offset=start, order=order, descending=descending, cursor=_cursor(order, cursor))
    if found:
        link_next(request, response, found, limit, cursor=found[-1].id if order is NameOrder.ID else None, offset=start)
    return found


async def _contacts(
    request: Request,
    response: Response,
    gateway: Gateway,
    tenant_id: TenantId,
    name: str,
    sort_by: Literal["id", "name"] | None,
    sort_order: Literal["desc", "asc"] | None,
    limit: int,
    offset: int | None,
    cursor: str | None,
) -> list[ContactOut]:
    session = await find_session(gateway, tenant_id, name)
    lister = partial(gateway.store.directory.list_contacts, tenant_id, session.id)
    order = NameOrder(sort_by or "id")
    found = await _page(request, response, lister, order, sort_order, limit, offset, cursor)
    return [ContactOut.of(c) for c in found]


_CONTACT_SORT = Annotated[Literal["id", "name"] | None, Query(alias="sortBy", description="id (the default) or name")]


@router.get("/api/contacts/all", summary="The session's contacts, by id by default")
async def all_contacts(
    request: Request,
    response: Response,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    session: _SESSION_QUERY = "default",
    sort_by: _CONTACT_SORT = None,
    sort_order: SortOrder = None,
    limit: Limit = 100,
    offset: Offset = None,
    cursor: IdCursor = None,
) -> list[ContactOut]:
    return await _contacts(request, response, gateway, tenant_id, session, sort_by, sort_order, limit, offset, cursor)


@router.get("/api/{name}/contacts", summary="The session's contacts (the same list as /api/contacts/all)")
async def session_contacts(
    name: SessionName,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    sort_by: _CONTACT_SORT = None,
    sort_order: SortOrder = None,
    limit: Limit = 100,
    offset: Offset = None,
    cursor: IdCursor = None,
) -> list[ContactOut]:
    return await _contacts(request, response, gateway, tenant_id, name, sort_by, sort_order, limit, offset, cursor)


async def _contact(gateway: Gateway, tenant_id: TenantId, name: str, contact_id: str) -> ContactOut:
    """The contact as the directory has it; a valid id it has not heard of is a contact without names."""
    wanted = chat_id_of(contact_id)
    if wanted.endswith("@g.us"):
        raise Unprocessable("a contact is a person (N@c.us or N@lid), not a group", code="invalid_chat_id")
    session = await find_session(gateway, tenant_id, name)
    found = await gateway.store.directory.get_contact(tenant_id, session.id, wanted)
    return ContactOut.of(found or Contact(wanted, None, None, 0.0))


@router.get("/api/contacts", summary="One contact (the session and the contact in the query)")
async def contact_by_query(
    contact_id: Annotated[
        str, Query(alias="contactId", max_length=64, description="the contact's id", json_schema_extra=_PERSON_ID)
    ],
    gateway: GatewayDep,
    tenant_id: TenantDep,
    session: _SESSION_QUERY = "default",
) -> ContactOut:
    return await _contact(gateway, tenant_id, session, contact_id)


@router.get("/api/{name}/contacts/{contact_id}", summary="One contact")
async def contact_by_path(
    name: SessionName,
    contact_id: Annotated[str, Path(max_length=64, description="the contact's id", json_schema_extra=_PERSON_ID)],
    gateway: GatewayDep,
    tenant_id: TenantDep,
) -> ContactOut:
    return await _contact(gateway, tenant_id, name, contact_id)


@router.get("/api/{name}/groups", summary="The groups the session's account is in, by id by default")
async def list_groups(
    name: SessionName,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    tenant_id: TenantDep,
    sort_by: Annotated[
        Literal["id", "subject"] | None, Query(alias="sortBy", description="id (the default) or subject")
    ] = None,
    sort_order: SortOrder = None,
    limit: Limit = 100,
    offset: Offset = None,
    exclude: Annotated[
        list[Literal["", "participants"]] | None,
        Query(max_length=2, description="`participants`: leave them out (null)"),
    ] = None,
    cursor: IdCursor = None,
) -> list[GroupOut]:
    session = await find_session(gateway, tenant_id, name)
    lister = partial(gateway.store.directory.list_groups, tenant_id, session.id)
    order = NameOrder.NAME if sort_by == "subject" else NameOrder.ID
    found = await _page(request, response, lister, order, sort_order, limit, offset, cursor)
    participants = "participants" not in (exclude or [])
    return [GroupOut.of(g, participants=participants) for g in found]

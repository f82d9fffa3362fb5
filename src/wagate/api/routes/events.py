"""Events: the history (``GET /api/events``), the live stream (``WS /ws``) and WebSocket tickets.

A WebSocket client authenticates with the ``X-Api-Key`` header or, from a browser (which cannot set headers on a
WebSocket), with a ticket from ``POST /api/events/ticket``: single-use, short-lived, stored only as a hash; the API
key itself never goes in a URL. After the handshake the server closes with a code that says why:

======  ==============================================================================
4400    bad query (an unknown event type, a malformed session name or ``after``)
4401    no credentials, a bad API key, or a used or expired ticket; or, on a stream that was open, its API key was
        revoked or its tenant deleted (on whichever worker), within a second
4403    the key is the admin's: events belong to tenants, use a tenant's key
4408    the client was not reading while more than ``WAGATE_WS_MAX_PENDING`` events waited for it, or
        read nothing for ``SEND_TIMEOUT`` seconds: reconnect with ``after=<last event id>`` to catch up
1009    the client sent a message larger than ``CLIENT_MESSAGE_MAX`` (the stream reads nothing from clients)
======  ==============================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketState

from wagate.api.deps import GatewayDep, PrincipalDep, TenantDep, get_gateway
from wagate.api.routes.sessions import find_session
from wagate.api.schemas import error_answers
from wagate.api.scopes import NEEDS, narrowed, refusal
from wagate.domain.events import Event, EventFilter, compact, parse_types, type_choices
from wagate.domain.sessions import NAME_PATTERN
from wagate.domain.tenants import Principal
from wagate.errors import Forbidden, Unprocessable
from wagate.fanout.bus import Revoked, SlowConsumer, Subscription
from wagate.gateway import Gateway
from wagate.ids import EVENT_ID_PATTERN, ApiKeyId, EventId, TenantId
from wagate.services.accounts import authenticate

__all__ = [
    "CATCH_UP_LIMIT",
    "CLIENT_MESSAGE_MAX",
    "CLOSE_BAD_REQUEST",
    "CLOSE_FORBIDDEN",
    "CLOSE_TOO_BIG",
    "CLOSE_TOO_SLOW",
    "CLOSE_UNAUTHORIZED",
    "SEND_TIMEOUT",
    "EventOut",
    "Ticket",
    "end_streams",
    "issue_ticket",
    "list_events",
    "router",
    "stream",
    "ticket_hash",
]

log = logging.getLogger("wagate.ws")
router = APIRouter(tags=["events"], responses=error_answers(401, 403, 503))

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_BIG = 1009
SEND_TIMEOUT = 10.0
CLIENT_MESSAGE_MAX = 4096  # bytes of one message from a client; what clients send is read only to be ignored
CATCH_UP_LIMIT = 10_000
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_TYPE = "|".join(re.escape(t) for t in type_choices())
_TYPES = f"^(?:{_TYPE})(?:,(?:{_TYPE}))*$"


class EventOut(BaseModel):
    """One event in WAHA's envelope (``WAHAWebhookMessage``), with wagate's ``tenant`` beside it; ``metadata``,
    ``me``, ``engine`` and ``environment`` are null for an event stored before the envelope became WAHA's."""

    id: str = Field(description="evt_ and a lower-case ULID: ids sort by time")
    timestamp: int = Field(description="when it happened, in ms")
    event: str
    session: str
    metadata: dict[str, object] | None = Field(description="the session's config.metadata")
    me: dict[str, object] | None = Field(description="the session's account (WAHA's MeInfo); null before it is linked")
    payload: dict[str, object]
    engine: str | None = Field(description="WAHA's name for the session's kind of engine (GOWS)")
    environment: dict[str, object] | None = Field(description="WAHA's WAHAEnvironment of the worker that committed it")
    tenant: str


class Ticket(BaseModel):
    ticket: str = Field(description="pass as ?ticket= to /ws within expires_in seconds; it works once")
    expires_in: float


def _types(raw: str | None) -> list[str]:
    try:
        return parse_types(raw.split(",")) if raw else []
    except ValueError as exc:
        raise Unprocessable(f"types: {exc}", code="invalid_event_type") from None


def _after(raw: str | None) -> EventId | None:
    if raw is None:
        return None
    if not _EVENT_ID.fullmatch(raw):
        raise Unprocessable("after: not an event id (evt_...)", code="invalid_event_id")
    return EventId(raw)


@router.get(
    "/api/events",
    summary="Event history, oldest first (kept WAGATE_EVENT_RETENTION_DAYS days)",
    responses=error_answers(404, 422),
)
async def list_events(
    gateway: GatewayDep,
    tenant_id: TenantDep,
    principal: PrincipalDep,
    session: Annotated[str | None, Query(description="only this session's events", max_length=64)] = None,
    types: Annotated[
        str | None,
        Query(description="comma-separated types, '*' or 'family.*'", json_schema_extra={"pattern": _TYPES}),
    ] = None,
    after: Annotated[
        str | None,
        Query(
            description="only events after this event id (to page or resume)",
            json_schema_extra={"pattern": EVENT_ID_PATTERN},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    wanted = EventFilter(_types(types))
    session = narrowed(principal, session)
    session_id = (await find_session(gateway, tenant_id, session)).id if session is not None else None
    exact = wanted.exact_types()
    resume = _after(after)
    if exact == []:  # only WAHA's events that are not emitted: none to find
        return []
    events = await gateway.store.events.list_events(
        tenant_id, session_id=session_id, types=exact, after=resume, limit=limit
    )
    return [EventOut(**e.envelope(wanted.renames(e))) for e in events]


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


@router.post("/api/events/ticket", summary="A single-use ticket for a browser's WebSocket (instead of the key)")
async def issue_ticket(gateway: GatewayDep, tenant_id: TenantDep, principal: PrincipalDep) -> Ticket:
    assert principal.key_id is not None  # a tenant's key is a stored one
    ticket = "wst_" + secrets.token_urlsafe(32)
    ttl = gateway.settings.ws_ticket_ttl
    await gateway.store.tickets.issue(tenant_id, principal.key_id, ticket_hash(ticket), gateway.clock() + ttl)
    return Ticket(ticket=ticket, expires_in=ttl)


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _holder(gateway: Gateway, websocket: WebSocket, ticket: str | None) -> Principal:
    """Who holds the stream: the key it came with, directly or through a ticket (what that key reaches now)."""
    api_key = websocket.headers.get("x-api-key")
    if api_key:
        principal = await authenticate(gateway.store, gateway.settings, api_key)
        if principal is None:
            raise _Refused(CLOSE_UNAUTHORIZED, "the API key is not valid")
    elif ticket:
        holder = await gateway.store.tickets.redeem(ticket_hash(ticket))
        key = await gateway.store.api_keys.get(holder[1], tenant_id=holder[0]) if holder and holder[1] else None
        if holder is None or key is None or not key.active:
            raise _Refused(CLOSE_UNAUTHORIZED, "the ticket is unknown, used or expired, or its API key was revoked")
        principal = Principal(key.role, holder[0], key.id, key.scope)
    else:
        raise _Refused(CLOSE_UNAUTHORIZED, "send the X-Api-Key header or a ?ticket= from POST /api/events/ticket")
    refused = refusal(principal, NEEDS[("WS", "/ws")])
    if refused is not None:
        raise _Refused(CLOSE_FORBIDDEN, refused.message)
    return principal


def end_streams(request: Request, *, keys: Sequence[ApiKeyId] = (), tenants: Sequence[TenantId] = ()) -> None:
    """Keys were revoked or tenants deleted: this process's streams that use them close now (with 4401); the other
    workers' as soon as they hear of it (the store told them with the commit); tickets issued under them stop
    working with the keys."""
    get_gateway(request).bus.revoke(keys=keys, tenants=tenants)


def _filter(session: str | None, events: str | None) -> EventFilter:
    if session is not None and not NAME_PATTERN.fullmatch(session):
        raise _Refused(CLOSE_BAD_REQUEST, "session: not a session name")
    try:
        types = parse_types(events.split(",")) if events else []
    except ValueError as exc:
        raise _Refused(CLOSE_BAD_REQUEST, f"events: {exc}"[:120]) from None
    return EventFilter(types, session)


async def _catch_up(
    gateway: Gateway, websocket: WebSocket, tenant_id: TenantId, wanted: EventFilter, after: EventId
) -> set[str]:
    """Send the stored events after ``after`` that the filter wants; the ids sent (live copies are skipped)."""
    sent: set[str] = set()
    exact = wanted.exact_types()
    cursor: EventId | None = after if exact != [] else None  # [] wants only events that are never emitted
    while cursor is not None and len(sent) < CATCH_UP_LIMIT:
        page = await gateway.store.events.list_events(tenant_id, types=exact, after=cursor, limit=500)
        for event in page:
            if wanted.matches(event):
                await _send(websocket, event, wanted)
                sent.add(event.id)
        cursor = page[-1].id if len(page) == 500 else None
    return sent


async def _send(
    websocket: WebSocket, event: Event, wanted: EventFilter, subscription: Subscription | None = None
) -> None:
    """One event, under the name the client wants it by; ``subscription.blocked`` while the write waits for the
    client to read."""
    text = compact(event.envelope(wanted.renames(event)))
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            if subscription is not None:
                subscription.blocked = True
            try:
                await websocket.send_text(text)
            finally:
                if subscription is not None:
                    subscription.blocked = False
    except TimeoutError:
        raise SlowConsumer(f"the client read nothing for {SEND_TIMEOUT:.0f}s") from None


async def _drain(websocket: WebSocket) -> tuple[int, str] | None:
    """Read (and ignore) what the client sends, to notice when it goes away; a close code and reason for a client
    that sends a message too large."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        if len(message.get("text") or message.get("bytes") or "") > CLIENT_MESSAGE_MAX:
            return CLOSE_TOO_BIG, f"this stream ignores what clients send; at most {CLIENT_MESSAGE_MAX} bytes"


async def _pump(
    gateway: Gateway,
    websocket: WebSocket,
    subscription: Subscription,
    reader: asyncio.Task[tuple[int, str] | None],
    resume: EventId | None,
) -> None:
    """The stored events after ``resume``, then live ones, until the client goes away."""
    wanted = subscription.wanted
    replayed = await _catch_up(gateway, websocket, subscription.tenant_id, wanted, resume) if resume else set()
    nxt: asyncio.Task[Event] | None = None
    try:
        while not reader.done():
            nxt = asyncio.ensure_future(subscription.next())
            await asyncio.wait({nxt, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                break
            event: Event | None = nxt.result()
            while event is not None:  # what waits goes out in a row, without a wait on the reader per event
                if event.id not in replayed:
                    await _send(websocket, event, wanted, subscription)
                event = subscription.pop()
    finally:
        if nxt is not None:  # left waiting, or ended by a revocation meanwhile: never an unheard failure
            nxt.cancel()
            if not nxt.cancelled() and nxt.done():
                nxt.exception()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):  # the client may be gone meanwhile
            await websocket.close(code=code, reason=reason)


@router.websocket("/ws")
async def stream(
    websocket: WebSocket,
    session: Annotated[str | None, Query(max_length=64)] = None,
    events: Annotated[str | None, Query(max_length=1000)] = None,
    ticket: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> None:
    """Live events of the caller's tenant as JSON text frames, one envelope each. ``after=<event id>`` first
    replays what was stored after that event, then goes live without gaps."""
    gateway = get_gateway(websocket)  # type: ignore[arg-type]
    await websocket.accept()
    try:
        principal = await _holder(gateway, websocket, ticket)
        assert principal.tenant_id is not None  # the admin's key is refused: events belong to tenants
        tenant_id, key_id = principal.tenant_id, principal.key_id
        try:
            session = narrowed(principal, session)
        except Forbidden as exc:
            raise _Refused(CLOSE_FORBIDDEN, exc.message) from None
        wanted = _filter(session, events)
        try:
            resume = _after(after)
        except Unprocessable as exc:
            raise _Refused(CLOSE_BAD_REQUEST, exc.message) from None
    except _Refused as refused:
        await websocket.close(code=refused.code, reason=refused.reason)
        return
    subscription = gateway.bus.subscribe(tenant_id, wanted, max_pending=gateway.settings.ws_max_pending, key_id=key_id)
    reader = asyncio.ensure_future(_drain(websocket))
    try:
        # A revocation ends the block at once, even while a write waits for a client that does not read.
        async with asyncio.timeout(None) as revocation:
            subscription.on_revoked = lambda: revocation.reschedule(asyncio.get_running_loop().time())
            try:
                await _pump(gateway, websocket, subscription, reader, resume)
            finally:
                subscription.on_revoked = None  # the block is left: nothing to stop any more
        if reader.done() and not reader.cancelled() and reader.exception() is None and (refusal := reader.result()):
            await _close(websocket, *refusal)
    except SlowConsumer as exc:
        log.info("websocket of tenant %s cut off: %s", tenant_id, exc)
        await _close(websocket, CLOSE_TOO_SLOW, "too slow: reconnect with after=<last event id>")
    except (Revoked, TimeoutError):
        if subscription.revoked is None:
            raise
        log.info("websocket of tenant %s closed: %s", tenant_id, subscription.revoked)
        await _close(websocket, CLOSE_UNAUTHORIZED, subscription.revoked)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away mid-send
    finally:
        subscription.close()
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader

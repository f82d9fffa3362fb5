"""Scoped API keys in WAHA's shapes, through the real ASGI app on a real store: making, listing, changing, switching
off and deleting keys; and every route walked with every kind of key, against what the route declares it needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from httpx import AsyncClient

from tests.support.api import ADMIN, assert_error, make_tenant, working_session
from wagate.api.scopes import NEEDS, Kind, Need, Where
from wagate.domain.tenants import Action
from wagate.gateway import Gateway

SCOPED = "s1"  # the session the scoped keys of these tests are for


async def key(client: AsyncClient, owner: dict[str, str], **fields: Any) -> dict[str, str]:
    made = await client.post("/api/keys", json=fields, headers=owner)
    assert made.status_code == 201, made.text
    return {"X-Api-Key": made.json()["key"]}


async def test_keys_take_and_give_waha_s_shapes(client: AsyncClient) -> None:
    tenant = await make_tenant(client, "a")
    made = await client.post(
        "/api/keys",
        json={"isAdmin": False, "session": "default", "isActive": True, "actions": {"read": True, "send": False}},
        headers=tenant,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["key"].startswith(body["prefix"])
    assert (body["isAdmin"], body["session"], body["isActive"]) == (False, "default", True)
    assert body["actions"] == {a.value: a is Action.READ for a in Action}
    listed = {k["id"]: k for k in (await client.get("/api/keys", headers=tenant)).json()}
    assert listed[body["id"]]["key"] == body["prefix"] + "…"  # kept as a hash: never shown again
    assert [k["isAdmin"] for k in listed.values()].count(True) == 1  # the tenant's own first key
    assert body["key"] not in str(listed)

    changed = await client.put(f"/api/keys/{body['id']}", json={"isAdmin": False, "session": None, "isActive": False})
    assert changed.status_code == 401  # no key: refused before anything
    changed = await client.put(
        f"/api/keys/{body['id']}", json={"isAdmin": False, "session": None, "isActive": False}, headers=tenant
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["session"], changed.json()["actions"], changed.json()["isActive"]) == (None, None, False)
    scoped = {"X-Api-Key": body["key"]}
    assert_error(await client.get("/api/sessions", headers=scoped), 401, "invalid_api_key")  # switched off
    back_on = {"isAdmin": False, "session": None, "isActive": True}
    assert (await client.put(f"/api/keys/{body['id']}", json=back_on, headers=tenant)).status_code == 200
    assert (await client.get("/api/sessions", headers=scoped)).status_code == 200
    deleted = await client.delete(f"/api/keys/{body['id']}", headers=tenant)
    assert (deleted.status_code, deleted.json()["isActive"]) == (200, False)
    assert_error(await client.get("/api/sessions", headers=scoped), 401, "invalid_api_key")
    assert_error(await client.delete(f"/api/keys/{body['id']}", headers=tenant), 404, "key_not_found")
    assert_error(await client.put(f"/api/keys/{body['id']}", json=back_on, headers=tenant), 404, "key_not_found")
    assert body["id"] not in {k["id"] for k in (await client.get("/api/keys", headers=tenant)).json()}


async def test_a_key_request_that_cannot_be_is_refused(client: AsyncClient) -> None:
    tenant = await make_tenant(client, "a")
    for bad, code in (
        ({"isAdmin": True, "session": "default"}, "admin_key_scoped"),
        ({"isAdmin": True, "actions": {"read": True}}, "admin_key_scoped"),
        ({"isAdmin": False, "actions": {"fly": True}}, None),
        ({"isAdmin": False, "session": "has space"}, None),
        ({"isAdmin": "maybe"}, None),
        ({"unknown": 1}, None),
    ):
        assert_error(await client.post("/api/keys", json=bad, headers=tenant), 422, code)
    assert len((await client.get("/api/keys", headers=tenant)).json()) == 1  # nothing made


async def test_a_scoped_key_reaches_its_session_and_its_actions_only(client: AsyncClient, gateway: Gateway) -> None:
    tenant = await make_tenant(client, "a")
    await working_session(client, gateway, tenant, SCOPED)
    await working_session(client, gateway, tenant, "s2")
    reader = await key(client, tenant, session=SCOPED, actions={"read": True})
    listed = (await client.get("/api/sessions", params={"all": "true"}, headers=reader)).json()
    assert [s["name"] for s in listed] == [SCOPED]  # the other session is not even listed
    assert (await client.get(f"/api/{SCOPED}/chats", headers=reader)).status_code == 200
    assert_error(await client.get("/api/s2/chats", headers=reader), 403, "key_scope")
    send = {"session": SCOPED, "chatId": "+15550100", "text": "hi"}
    assert_error(await client.post("/api/sendText", json=send, headers=reader), 403, "key_scope")
    assert_error(await client.get("/api/events", params={"session": "s2"}, headers=reader), 403, "key_scope")
    assert (await client.get("/api/events", headers=reader)).status_code == 200  # narrowed to its session
    sender = await key(client, tenant, session=SCOPED, actions={"send": True})
    assert (await client.post("/api/sendText", json=send, headers=sender)).status_code == 201
    other = send | {"session": "s2"}
    assert_error(await client.post("/api/sendText", json=other, headers=sender), 403, "key_scope")
    no_session = {k: v for k, v in send.items() if k != "session"}  # WAHA's "default", not this key's session
    assert_error(await client.post("/api/sendText", json=no_session, headers=sender), 403, "key_scope")
    for owner_only in (("POST", "/api/keys"), ("GET", "/api/webhooks"), ("POST", "/api/sessions")):
        assert_error(await client.request(*owner_only, json={}, headers=sender), 403, "key_scope")
    control = await client.post("/api/keys/control", json={"session": SCOPED}, headers=tenant)
    assert control.status_code == 201, control.text
    assert control.json()["actions"] == {a.value: a is Action.CONTROL for a in Action}
    controller = {"X-Api-Key": control.json()["key"]}
    assert_error(await client.get(f"/api/sessions/{SCOPED}", headers=controller), 403, "key_scope")
    assert_error(await client.post("/api/sessions/s2/stop", headers=controller), 403, "key_scope")


# Every route walked with every kind of key ----------------------------------------------------------------------

_PATH_VALUES = {
    "name": SCOPED,
    "tenant_id": "ten_" + "0" * 26,
    "key_id": "key_" + "0" * 26,
    "webhook_id": "whk_" + "0" * 26,
    "backup_id": "bak_" + "0" * 26,
    "seq": "1",
    "chat_id": "15550100@c.us",
    "message_id": "AAAA",
    "contact_id": "15550100@c.us",
}


def routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, through the routers it includes."""

    def walk(found: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in found:
            if isinstance(route, APIRoute):
                yield from ((method, prefix + route.path) for method in route.methods or ())
            elif isinstance(route, APIWebSocketRoute):
                yield "WS", prefix + route.path
            elif hasattr(route, "original_router"):  # a router the app includes
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)

    return set(walk(app.router.routes, ""))


def allowed(who: str, need: Need, actions: frozenset[Action] | None, session: str | None) -> bool:
    """What each kind of key may call, written out from the rules (independently of wagate.api.scopes)."""
    if need.kind is Kind.PUBLIC:
        return True
    if who == "none":
        return False
    if need.kind is Kind.ANY_KEY:
        return True
    if who == "admin":
        return need.kind in (Kind.ADMIN, Kind.MANAGER)
    if need.kind is Kind.ADMIN:
        return False
    if who == "tenant":
        return True
    if need.kind in (Kind.MANAGER, Kind.TENANT):
        return False
    assert need.action is not None
    if actions is not None and need.action not in actions:
        return False
    return need.kind is Kind.SESSIONS or session in (None, SCOPED)


async def test_every_route_declares_what_its_caller_needs(client: AsyncClient) -> None:
    app: FastAPI = client._transport.app  # type: ignore[attr-defined]
    declared = set(NEEDS)
    served = routes(app) - {("HEAD", path) for _, path in routes(app)}
    assert served - declared == set(), "routes with no declared need"
    assert declared - served == set(), "needs declared for routes that do not exist"


async def test_every_route_with_every_kind_of_key(client: AsyncClient, gateway: Gateway) -> None:
    """Each (route, key) pair: refused with 401/403 exactly when the key may not call the route; anything else
    (200, 404, 409, 422 for the walk's made-up ids and bodies) when it may."""
    tenant = await make_tenant(client, "a")
    await working_session(client, gateway, tenant, SCOPED)
    keys: dict[str, tuple[dict[str, str], frozenset[Action] | None, str | None]] = {
        "none": ({}, None, None),
        "admin": (ADMIN, None, None),
        "tenant": (tenant, None, None),
        "scoped to all": (await key(client, tenant), None, None),
        "scoped to s1": (await key(client, tenant, session=SCOPED), None, SCOPED),
        "scoped to s2": (await key(client, tenant, session="s2"), None, "s2"),
    }
    for action in Action:
        made = await key(client, tenant, session=SCOPED, actions={action.value: True})
        keys[f"{action.value} on s1"] = (made, frozenset([action]), SCOPED)
    walked = 0
    for (method, path), need in sorted(NEEDS.items()):
        if method == "WS":  # its refusals (close codes) are driven in tests/e2e/test_scoped_keys_e2e.py
            continue
        url = path.format(**_PATH_VALUES)
        body = {need.field: SCOPED} if need.where is Where.BODY else {}
        params = {need.field: SCOPED} if need.where is Where.QUERY else {}
        for who, (headers, actions, session) in keys.items():
            kind = who.split(" ")[0] if who in ("none", "admin", "tenant") else "scoped"
            answer = await client.request(
                method, url, headers=headers, params=params, json=body if method != "GET" else None
            )
            expected = allowed(kind if kind != "scoped" else who, need, actions, session)
            refused = answer.status_code in (401, 403)
            assert refused != expected, (method, path, who, answer.status_code, answer.text[:200])
            walked += 1
    assert walked == (len(NEEDS) - 1) * len(keys)

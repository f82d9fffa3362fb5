"""Reading messages, chats, contacts and groups in WAHA's shapes through the real ASGI app on a real store: every
route, field, filter and sort, offset and cursor paging that agree with each other, and bad input as a 4xx."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from httpx import AsyncClient

from tests.support.api import assert_error, key_hash, make_tenant, text, working_session
from wagate.domain.events import Event, EventType
from wagate.domain.messages import Contact, Group, InboundMessage, MessageKind
from wagate.domain.sessions import Session
from wagate.gateway import Gateway

ANN = "15550100@s.whatsapp.net"
BOB = "15550200@s.whatsapp.net"
TEAM = "120363000000000001@g.us"


async def _session(gateway: Gateway, key: dict[str, str], name: str = "main") -> Session:
    found = await gateway.store.api_keys.find_active(key_hash(key))
    assert found is not None
    assert found.tenant_id is not None
    session = await gateway.store.sessions.get(found.tenant_id, name)
    assert session is not None
    return session


async def receive(gateway: Gateway, session: Session, message_id: str, chat: str, at: float, **body: Any) -> None:
    """A message received as the supervisor stores one: sealed, with its event."""
    sender = body.pop("sender", chat)
    sealed = await gateway.bodies.seal_body(session.tenant_id, session.id, message_id, {"text": None, **body})
    event = Event.new(EventType.MESSAGE, session.tenant_id, session.id, session.name, at, {"id": message_id})
    inbound = InboundMessage(
        session.tenant_id, session.id, message_id, chat, sender, "Ann", MessageKind.TEXT, at, sealed, event
    )
    await gateway.store.sessions.set_status_many([], [], [inbound])


async def seeded(client: AsyncClient, gateway: Gateway) -> tuple[dict[str, str], Session]:
    """Ann's chat: six messages received at 1001..1006 (one an image, one a reply), and one sent by the API (the
    newest); a group message from Bob; Ann and Bob in the directory, and the group."""
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    session = await _session(gateway, key)
    for n in range(1, 7):
        extra: dict[str, Any] = {"text": f"m{n}"}
        if n == 3:
            extra = {"text": None, "media": {"mimetype": "image/png", "filename": "a.png", "size": 3}}
        if n == 5:
            extra["extra"] = {"replyTo": "IN3"}
        await receive(gateway, session, f"IN{n}", ANN, 1000.0 + n, **extra)
    await receive(gateway, session, "G1", TEAM, 1003.5, text="hello team", sender=BOB)
    await gateway.store.directory.put_contacts(
        session.tenant_id, session.id, [Contact(ANN, "Ann A.", "Ann", 1.0), Contact(BOB, None, "bobby", 1.0)]
    )
    await gateway.store.directory.put_groups(session.tenant_id, session.id, [Group(TEAM, "Team", [ANN, BOB], 1.0)])
    sent = await client.post("/api/sendText", json=text(text="from api"), headers=key)
    assert sent.status_code == 201, sent.text
    return key, session


def ids(answer: Any) -> list[str]:
    return [m["_data"]["id"] for m in answer.json()]


async def test_a_chats_messages_are_wamessages_with_waha_s_filters(client: AsyncClient, gateway: Gateway) -> None:
    key, _ = await seeded(client, gateway)
    path = "/api/main/chats/15550100@c.us/messages"
    listed = await client.get(path, headers=key)
    assert listed.status_code == 200, listed.text
    assert ids(listed)[1:] == ["IN6", "IN5", "IN4", "IN3", "IN2", "IN1"]  # newest first, the sent one before them
    received = listed.json()[1]
    assert received == received | {
        "id": "false_15550100@c.us_IN6",
        "timestamp": 1006,
        "from": "15550100@c.us",
        "to": "15550009@c.us",
        "fromMe": False,
        "source": "app",
        "participant": "",
        "body": "m6",
        "hasMedia": False,
        "ack": 2,
        "ackName": "DEVICE",
        "replyTo": None,
    }
    image, reply = listed.json()[4], listed.json()[2]
    assert (image["hasMedia"], image["media"]["mimetype"], image["media"]["url"]) == (True, "image/png", None)
    assert reply["replyTo"] | {"_data": None} == {
        "id": "IN3",
        "participant": "15550100@c.us",
        "body": None,
        "hasMedia": True,
        "media": {"url": None, "mimetype": "image/png", "filename": "a.png", "s3": None, "error": None},
        "_data": None,
    }
    query: list[tuple[dict[str, Any], list[str]]] = [
        ({"sortOrder": "asc", "limit": 3}, ["IN1", "IN2", "IN3"]),
        ({"filter.timestamp.gte": 1002, "filter.timestamp.lte": 1004}, ["IN4", "IN3", "IN2"]),  # inclusive
        ({"filter.fromMe": "false", "limit": 2}, ["IN6", "IN5"]),
        ({"filter.ack": "DEVICE", "sortBy": "messageTimestamp", "limit": 1}, ["IN6"]),
        ({"filter.ack": "PLAYED"}, []),
        ({"from": "+15550100", "offset": 5}, ["IN1"]),
    ]
    for params, expected in query:
        answer = await client.get(path, params=params, headers=key)
        assert ids(answer) == expected, params
    mine = await client.get(path, params={"filter.fromMe": "true", "filter.ack": "PENDING"}, headers=key)
    assert [(m["fromMe"], m["body"], m["source"]) for m in mine.json()] == [(True, "from api", "api")]
    bare = await client.get(path, params={"downloadMedia": "false", "filter.timestamp.lte": 1003}, headers=key)
    assert [(m["hasMedia"], m["media"]) for m in bare.json()] == [(True, None), (False, None), (False, None)]
    by_query = await client.get("/api/messages", params={"session": "main", "chatId": "15550100@c.us"}, headers=key)
    assert by_query.json() == (await client.get(path, headers=key)).json()[:10]  # WAHA's default limit: 10


async def test_offset_and_cursor_pages_agree_and_never_repeat(client: AsyncClient, gateway: Gateway) -> None:
    key, _ = await seeded(client, gateway)
    path = "/api/main/chats/15550100@c.us/messages"
    every = ids(await client.get(path, params={"limit": 100}, headers=key))
    by_offset = [ids(await client.get(path, params={"limit": 3, "offset": o}, headers=key)) for o in (0, 3, 6)]
    assert [i for page in by_offset for i in page] == every
    followed: list[list[str]] = []
    url: str | None = f"{path}?limit=3&sortOrder=desc"
    while url:
        page = await client.get(url, headers=key)
        followed.append(ids(page))
        url = page.links.get("next", {}).get("url")
        if url:
            assert "cursor=" in url
            assert "offset=" not in url
            assert "sortOrder=desc" in url  # the rest of the query is kept
    assert followed == [every[:3], every[3:6], every[6:]]  # the last page is not full: no Link after it
    start = await client.get(path, params={"limit": 3, "offset": 3}, headers=key)  # from an offset on by cursor
    after = await client.get(start.links["next"]["url"], headers=key)
    assert ids(after) == every[6:]
    first = await client.get(path, params={"limit": 3}, headers=key)
    cursor = parse_qs(urlsplit(first.links["next"]["url"]).query)["cursor"][0]
    both = await client.get(path, params={"limit": 3, "offset": 1, "cursor": cursor}, headers=key)
    assert ids(both) == every[4:7]  # the offset counts after the cursor


async def test_one_message_by_either_id_and_in_its_own_chat_only(client: AsyncClient, gateway: Gateway) -> None:
    key, _ = await seeded(client, gateway)
    base = "/api/main/chats/15550100@c.us/messages"
    for wanted in ("false_15550100@c.us_IN5", "IN5"):
        one = await client.get(f"{base}/{wanted}", headers=key)
        assert (one.status_code, one.json()["id"], one.json()["replyTo"]["id"]) == (
            200,
            "false_15550100@c.us_IN5",
            "IN3",
        )
    group = await client.get(f"/api/main/chats/{TEAM}/messages/G1", headers=key)
    assert (group.json()["id"], group.json()["participant"], group.json()["author"], group.json()["from"]) == (
        f"false_{TEAM}_G1_15550200@c.us",
        "15550200@c.us",
        "15550200@c.us",
        TEAM,
    )
    assert (await client.get(f"{base}/G1", headers=key)).status_code == 404  # another chat's message
    assert_error(await client.get(f"{base}/NOPE", headers=key), 404, "message_not_found")
    assert_error(await client.get("/api/main/chats/nobody/messages/IN5", headers=key), 422, "invalid_chat_id")
    other = await make_tenant(client, "b")
    await working_session(client, gateway, other)
    assert_error(await client.get(f"{base}/IN5", headers=other), 404, "message_not_found")


async def test_chats_and_their_overview(client: AsyncClient, gateway: Gateway) -> None:
    key, _ = await seeded(client, gateway)
    chats = await client.get("/api/main/chats", headers=key)
    assert [(c["id"], c["name"], c["isGroup"], c["messages"]) for c in chats.json()] == [
        ("15550100@c.us", "Ann A.", False, 7),
        (TEAM, "Team", True, 1),
    ]
    by_name = await client.get(
        "/api/main/chats", params={"sortBy": "name", "sortOrder": "desc", "limit": 1}, headers=key
    )
    assert [c["name"] for c in by_name.json()] == ["Team"]
    assert "offset=1" in by_name.links["next"]["url"]  # a name sort pages by offset
    rest = await client.get(by_name.links["next"]["url"], headers=key)
    assert [c["name"] for c in rest.json()] == ["Ann A."]
    by_id = await client.get("/api/main/chats", params={"sortBy": "id", "limit": 1}, headers=key)
    assert [c["id"] for c in by_id.json()] == [TEAM]
    assert "offset=1" in by_id.links["next"]["url"]
    following = await client.get(by_id.links["next"]["url"], headers=key)
    assert [c["id"] for c in following.json()] == ["15550100@c.us"]
    recent = await client.get("/api/main/chats", params={"limit": 1}, headers=key)
    assert "cursor=" in recent.links["next"]["url"]  # the default order pages by cursor
    assert [c["id"] for c in (await client.get(recent.links["next"]["url"], headers=key)).json()] == [TEAM]
    named_cursor = await client.get("/api/main/chats", params={"sortBy": "name", "cursor": "1.0_x"}, headers=key)
    assert_error(named_cursor, 422, "invalid_cursor")
    named_contacts = await client.get("/api/main/contacts", params={"sortBy": "name", "cursor": "x"}, headers=key)
    assert_error(named_contacts, 422, "invalid_cursor")

    overview = await client.get("/api/main/chats/overview", params={"ids": [TEAM]}, headers=key)
    assert overview.status_code == 200, overview.text
    [team] = overview.json()
    assert (team["id"], team["name"], team["picture"], team["_chat"]["isGroup"]) == (TEAM, "Team", "", True)
    assert (team["lastMessage"]["body"], team["lastMessage"]["participant"]) == ("hello team", "15550200@c.us")
    posted = await client.post(
        "/api/main/chats/overview", json={"pagination": {"limit": 1, "offset": 1}, "filter": {}}, headers=key
    )
    assert (posted.status_code, [c["id"] for c in posted.json()]) == (201, [TEAM])
    first = await client.post("/api/main/chats/overview", json={"pagination": {}}, headers=key)
    assert first.json()[0]["lastMessage"]["body"] == "from api"
    for bad in ({}, {"pagination": {"limit": 0}}, {"pagination": {}, "filter": {"ids": ["nobody"]}}):
        assert_error(await client.post("/api/main/chats/overview", json=bad, headers=key), 422)


async def test_contacts_and_groups(client: AsyncClient, gateway: Gateway) -> None:
    key, _ = await seeded(client, gateway)
    everyone = await client.get("/api/contacts/all", params={"session": "main"}, headers=key)
    assert everyone.json() == [
        {"id": "15550100@c.us", "number": "15550100", "name": "Ann A.", "pushname": "Ann"},
        {"id": "15550200@c.us", "number": "15550200", "name": None, "pushname": "bobby"},
    ]
    assert (await client.get("/api/main/contacts", headers=key)).json() == everyone.json()
    by_name = await client.get("/api/main/contacts", params={"sortBy": "name", "sortOrder": "desc"}, headers=key)
    assert [c["id"] for c in by_name.json()] == ["15550200@c.us", "15550100@c.us"]  # bobby, then Ann A.
    one = await client.get("/api/contacts", params={"session": "main", "contactId": "15550200@c.us"}, headers=key)
    assert one.json() == everyone.json()[1]
    assert (await client.get("/api/main/contacts/+15550100", headers=key)).json() == everyone.json()[0]
    unknown = await client.get("/api/main/contacts/15550999@c.us", headers=key)
    assert unknown.json() == {"id": "15550999@c.us", "number": "15550999", "name": None, "pushname": None}
    assert_error(await client.get(f"/api/main/contacts/{TEAM}", headers=key), 422, "invalid_chat_id")
    assert_error(await client.get("/api/contacts", params={"contactId": "x"}, headers=key), 422)
    assert_error(await client.get("/api/contacts", params={"contactId": "+15550100"}, headers=key), 404)  # no "default"

    groups = await client.get("/api/main/groups", headers=key)
    assert groups.json() == [
        {"id": TEAM, "subject": "Team", "size": 2, "participants": [{"id": "15550100@c.us"}, {"id": "15550200@c.us"}]}
    ]
    lean = await client.get("/api/main/groups", params={"exclude": "participants", "sortBy": "subject"}, headers=key)
    assert lean.json()[0]["participants"] is None
    assert_error(await client.get("/api/main/groups", params={"exclude": "admins"}, headers=key), 422)


async def test_bad_list_queries_are_422(client: AsyncClient, gateway: Gateway) -> None:
    key, _ = await seeded(client, gateway)
    path = "/api/main/chats/15550100@c.us/messages"
    for params in (
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"sortBy": "body"},
        {"sortOrder": "up"},
        {"filter.ack": "SEEN"},
        {"filter.timestamp.gte": "nan"},
        {"filter.fromMe": "maybe"},
        {"cursor": "1000_x"},
    ):
        assert_error(await client.get(path, params=params, headers=key), 422)
    assert_error(await client.get("/api/messages", params={"session": "main"}, headers=key), 422)  # chatId
    assert_error(await client.get("/api/main/chats", params={"sortBy": "when"}, headers=key), 422)

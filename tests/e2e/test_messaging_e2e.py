"""Messaging end to end with real processes: sending (durable, rate-limited, idempotent), receiving and storing,
reading back page by page, tenant isolation, and bodies sealed at rest."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.support import loopback
from tests.support.probes import HOOKS, add_webhook, all_events, pages, read_until, ws_url
from tests.support.receiver import Receiver
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

PHONE = "+15550001"
PEER = "15550100@s.whatsapp.net"
PEER_ID = "15550100@c.us"  # as WAHA's answers write it


def send(stack: Stack, text: str, *, session: str = "main", key: str | None = None, **extra: Any) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    with stack.http as http:
        body = {"session": session, "chatId": "+15550100", "text": text, **extra}
        return http.post("/api/sendText", json=body, headers=headers)


def message(stack: Stack, message_id: str, session: str = "main") -> dict[str, Any]:
    with stack.http as http:
        response = http.get(f"/api/{session}/messages/{message_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def status(stack: Stack, message_id: str, session: str = "main") -> str:
    """The gateway's status of a message (``pending`` ... ``read``), from wagate's record in ``_data``."""
    found: str = message(stack, message_id, session)["_data"]["status"]
    return found


def bare(message: dict[str, Any]) -> str:
    """WhatsApp's id of a ``WAMessage`` (its ``id`` is WAHA's serialized one)."""
    found: str = message["_data"]["id"]
    return found


def sim_sent(stack: Stack, phone: str = PHONE) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = loopback.get(f"{stack.sim.base_url}/devices/{phone}/sent", timeout=15).json()
    return sent


def test_sent_messages_reach_the_phone_and_move_to_read(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    stack.start()
    stack.tenant()
    stack.link("main", PHONE)
    answer = send(stack, "hello there", reply_to="SIMABCDEF")
    assert answer.status_code == 201, answer.text
    sent = answer.json()
    assert (sent["_data"]["status"], sent["ack"], sent["ackName"]) == ("pending", 0, "PENDING")
    assert (sent["id"], sent["to"]) == (f"true_{PEER_ID}_{bare(sent)}", PEER_ID)
    assert sent["fromMe"] is True
    assert sent["body"] == "hello there"
    wait_for(lambda: status(stack, sent["id"]) == "delivered", 10, "a delivery receipt")
    assert message(stack, sent["id"])["ackName"] == "DEVICE"
    at_sim = sim_sent(stack)
    assert [(m["id"], m["to"], m["text"], m["reply_to"]) for m in at_sim] == [
        (bare(sent), PEER, "hello there", "SIMABCDEF")
    ]
    stack.sim_post(f"/devices/{PHONE}/read", {"ids": [bare(sent)]})
    wait_for(lambda: status(stack, sent["id"]) == "read", 10, "a read receipt")
    assert message(stack, sent["id"])["ack"] == 3

    image = base64.b64encode(b"\x89PNG fake image bytes").decode()
    with stack.http as http:
        made = http.post(
            "/api/sendImage",
            json={
                "session": "main",
                "chatId": "15550100@c.us",
                "file": {"mimetype": "image/png", "filename": "a.png", "data": image},
                "caption": "look",
            },
        )
        assert made.status_code == 201, made.text
        wrong = http.post(
            "/api/sendVoice",
            json={"session": "main", "chatId": "+15550100", "file": {"mimetype": "image/png", "data": image}},
        )
        assert wrong.status_code == 422
        assert wrong.json()["error"]["code"] == "invalid_media"
    media_id = bare(made.json())
    wait_for(lambda: status(stack, media_id) == "delivered", 10, "the image delivered")
    by_id = {m["id"]: m for m in sim_sent(stack)}
    assert by_id[media_id]["text"] == "look"
    assert by_id[media_id]["media"]["size"] == len(b"\x89PNG fake image bytes")
    assert by_id[media_id]["media"]["mimetype"] == "image/png"
    assert message(stack, media_id)["media"]["filename"] == "a.png"


def test_every_kind_reaches_the_phone_as_its_kind(stack_factory: Callable[..., Stack]) -> None:
    """Videos, video notes, places, contact cards and polls: queued, sent through the simulator's WhatsApp and
    delivered, each arriving as its own kind, and read back from the store in WAHA's shapes."""
    stack = stack_factory()
    stack.start()
    stack.tenant()
    stack.link("main", PHONE)
    video = base64.b64encode(b"\x00\x00\x00\x18ftypmp42 fake video").decode()
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ann Lee\nTEL;type=CELL;waid=15550300:+1 555 0300\nEND:VCARD"
    sends: dict[str, tuple[str, dict[str, Any]]] = {
        "video": ("/api/sendVideo", {"file": {"mimetype": "video/mp4", "data": video}, "caption": "watch"}),
        "note": ("/api/sendVideo", {"file": {"mimetype": "video/mp4", "data": video}, "asNote": True}),
        "place": ("/api/sendLocation", {"latitude": 52.52, "longitude": 13.405, "title": "Office"}),
        "cards": (
            "/api/sendContactVcard",
            {"contacts": [{"vcard": vcard}, {"fullName": "Bo, Jr.", "phoneNumber": "+1 555 0400"}]},
        ),
        "poll": ("/api/sendPoll", {"poll": {"name": "Lunch?", "options": ["yes", "no"], "multipleAnswers": False}}),
    }
    made: dict[str, dict[str, Any]] = {}
    with stack.http as http:
        for name, (path, fields) in sends.items():
            answer = http.post(path, json={"session": "main", "chatId": "+15550100", **fields})
            assert answer.status_code == 201, (name, answer.text)
            made[name] = answer.json()
        refused = http.post(
            "/api/sendVideo",
            json={"session": "main", "chatId": "+15550100", "file": {"mimetype": "video/webm", "data": video},
                  "convert": True},
        )  # fmt: skip
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "conversion_unsupported"
    for name, sent in made.items():
        wait_for(lambda: status(stack, sent["id"]) == "delivered", 10, f"the {name} delivered")  # noqa: B023
    at_sim = {m["id"]: m for m in sim_sent(stack)}
    assert len(at_sim) == len(sends)  # the refused video was never queued
    first = at_sim[bare(made["video"])]
    assert (first["text"], first["media"]["kind"], first["media"]["note"]) == ("watch", "video", False)
    assert first["media"]["size"] == len(base64.b64decode(video))
    assert at_sim[bare(made["note"])]["media"]["note"] is True
    assert at_sim[bare(made["place"])]["location"] == {"latitude": 52.52, "longitude": 13.405, "name": "Office"}
    cards = at_sim[bare(made["cards"])]["contacts"]
    assert [c["name"] for c in cards] == ["Ann Lee", "Bo, Jr."]
    assert cards[0]["vcard"] == vcard
    assert "FN:Bo\\, Jr." in cards[1]["vcard"]  # made from its parts, escaped as vCard writes a comma
    assert "TEL;type=CELL;type=VOICE:+1 555 0400" in cards[1]["vcard"]
    assert at_sim[bare(made["poll"])]["poll"] == {"name": "Lunch?", "options": ["yes", "no"], "multiple": False}
    # Read back from the store in WAHA's shapes.
    stored = {name: message(stack, sent["id"]) for name, sent in made.items()}
    assert [stored[n]["_data"]["type"] for n in sends] == ["video", "video", "location", "contacts", "poll"]
    assert (stored["video"]["hasMedia"], stored["video"]["media"]["mimetype"]) == (True, "video/mp4")
    place = stored["place"]["location"]
    assert (place["latitude"], place["longitude"], place["name"], place["live"]) == ("52.52", "13.405", "Office", False)
    assert stored["cards"]["vCards"] == [c["vcard"] for c in cards]
    assert stored["poll"]["body"] == ""


def test_places_cards_and_polls_from_a_contact_arrive_as_their_kind(stack: Stack) -> None:
    """What a contact sends through the simulator's WhatsApp: stored with its kind, reported in the ``message``
    event and read back in WAHA's shapes (a place in ``location``, cards in ``vCards``, a poll in ``_data``)."""
    stack.link("main", PHONE)
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ann\nEND:VCARD"
    shared: dict[str, dict[str, Any]] = {
        "place": {"location": {"latitude": 48.8584, "longitude": 2.2945, "name": "Tower", "live": False}},
        "live": {"location": {"latitude": -33.9, "longitude": 151.2, "live": True}},
        "cards": {"contacts": [{"name": "Ann", "vcard": vcard}]},
        "poll": {"poll": {"name": "Lunch?", "options": ["yes", "no"], "multiple": True}},
    }
    ids = {}
    for name, fields in shared.items():
        (ids[name],) = stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "", **fields})["ids"]
    refused = loopback.post(
        f"{stack.sim.base_url}/devices/{PHONE}/messages",
        json={"from": "+15550100", "text": "", "poll": {"name": "Q", "options": ["only one"]}},
        timeout=15,
    )
    assert refused.status_code == 422  # WhatsApp's rule: a poll has 2 to 12 options

    def stored() -> dict[str, dict[str, Any]]:
        with stack.http as http:
            listed = http.get(f"/api/main/chats/{PEER_ID}/messages", params={"limit": 10}).json()
        return {m["_data"]["id"]: m for m in listed}

    wait_for(lambda: set(ids.values()) <= set(stored()), 10, "the shared messages stored")
    found = {name: stored()[message_id] for name, message_id in ids.items()}
    assert [found[n]["_data"]["type"] for n in shared] == ["location", "location", "contacts", "poll"]
    assert all(m["fromMe"] is False and m["from"] == PEER_ID for m in found.values())
    place = found["place"]["location"]
    assert (place["latitude"], place["longitude"], place["name"], place["live"]) == (
        "48.8584",
        "2.2945",
        "Tower",
        False,
    )
    assert found["live"]["location"]["live"] is True
    assert found["cards"]["vCards"] == [vcard]
    assert found["poll"]["_data"]["poll"] == {"name": "Lunch?", "options": ["yes", "no"], "multiple": True}
    events = {e["payload"]["_data"]["id"]: e["payload"] for e in all_events(stack, "message")}
    assert events[ids["place"]]["location"]["name"] == "Tower"
    assert events[ids["cards"]]["vCards"] == [vcard]
    assert events[ids["poll"]]["_data"]["poll"]["options"] == ["yes", "no"]


def test_messages_written_on_the_phone_are_the_account_s_own(stack: Stack) -> None:
    """A message the account's phone sends reaches the linked session as its own (WhatsApp hands it to every
    device): stored in its chat with ``fromMe`` and ``source: app``, reported in ``message.any`` only, never as a
    ``message`` from someone else."""
    stack.link("main", PHONE)
    (own,) = stack.sim_post(
        f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "written on the phone", "fromMe": True}
    )["ids"]
    (theirs,) = stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "the answer"})["ids"]
    wait_for(
        lambda: {own, theirs} <= {bare(m) for m in pages(stack, f"/api/main/chats/{PEER}/messages", limit=10)},
        10,
        "both",
    )
    listed = {bare(m): m for m in pages(stack, f"/api/main/chats/{PEER}/messages", limit=10)}
    mine = listed[own]
    assert (mine["fromMe"], mine["source"], mine["from"], mine["to"]) == (True, "app", "15550001@c.us", PEER_ID)
    assert (mine["body"], mine["id"], mine["ackName"]) == ("written on the phone", f"true_{PEER_ID}_{own}", "SERVER")
    assert (listed[theirs]["fromMe"], listed[theirs]["source"]) == (False, "app")
    with stack.http as http:
        chats = http.get("/api/main/chats").json()
        contacts = http.get("/api/main/contacts").json()
    assert [(c["id"], c["messages"]) for c in chats] == [(PEER_ID, 2)]  # one chat, whoever wrote
    assert "15550001@c.us" not in [c["id"] for c in contacts]  # the account is not its own contact
    anys = {e["payload"]["_data"]["id"]: e["payload"] for e in all_events(stack, "message.any")}
    assert anys[own]["fromMe"] is True
    assert anys[own]["source"] == "app"
    assert own not in {e["payload"]["_data"]["id"] for e in all_events(stack, "message")}


def test_reactions_go_to_messages_the_session_has(stack: Stack) -> None:
    """PUT /api/reaction: on a received message and on one the session sent, taken away with an empty emoji, keyed
    as WhatsApp keys it; a message the session does not have is a 404, and nothing is queued for it."""
    stack.link("main", PHONE)
    (theirs,) = stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "lunch?"})["ids"]
    mine = bare(send(stack, "sure").json())
    wait_for(
        lambda: {theirs, mine} <= {bare(m) for m in pages(stack, f"/api/main/chats/{PEER}/messages", limit=10)},
        10,
        "both",
    )
    wait_for(lambda: status(stack, mine) == "delivered", 10, "mine delivered")
    reactions = [(f"false_{PEER_ID}_{theirs}", "👍"), (mine, "🎉"), (theirs, "")]
    made = []
    with stack.http as http:
        for target, emoji in reactions:
            answer = http.put("/api/reaction", json={"session": "main", "messageId": target, "reaction": emoji})
            assert answer.status_code == 200, answer.text
            assert answer.json()["_data"]["type"] == "reaction"
            assert answer.json()["_data"]["reaction"]["emoji"] == emoji
            made.append(bare(answer.json()))
        unknown = http.put("/api/reaction", json={"session": "main", "messageId": "NOSUCHMESSAGE1", "reaction": "👍"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "message_not_found"
    for reaction in made:
        wait_for(lambda: status(stack, reaction) == "delivered", 10, "the reaction delivered")  # noqa: B023
    at_sim = {m["id"]: m for m in sim_sent(stack)}
    assert [at_sim[r]["to"] for r in made] == [PEER] * 3  # to the chat of the message
    assert [at_sim[r]["reaction"] for r in made] == [
        {"id": theirs, "emoji": "👍", "fromMe": False, "participant": PEER},
        {"id": mine, "emoji": "🎉", "fromMe": True, "participant": None},
        {"id": theirs, "emoji": "", "fromMe": False, "participant": PEER},
    ]
    assert len(at_sim) == 4  # "sure" and the three reactions: nothing for the unknown message


def test_ten_thousand_inbound_messages_in_100_chats_are_stored_once_and_page_without_gaps(stack: Stack) -> None:
    stack.link("main", PHONE)
    group = stack.sim_post(f"/devices/{PHONE}/groups", {"subject": "Team", "participants": ["+15550199"]})["id"]
    stack.sim_post(f"/devices/{PHONE}/contacts", {"contacts": [{"phone": "+15550100", "name": "Ann"}]})
    expected: dict[str, set[str]] = {}
    for n in range(99):
        sender = f"+155501{n:02d}"
        ids = stack.sim_post(f"/devices/{PHONE}/messages", {"from": sender, "text": f"hi {n}", "count": 100})["ids"]
        expected[f"155501{n:02d}@c.us"] = set(ids)
        if n == 30:  # SIGKILL mid-stream: what was stored and not acknowledged comes again
            wait_for(lambda: stack.device(PHONE)["messages_acked"] >= 1000, 20, "part of the messages stored")
            assert stack.gateway is not None
            stack.gateway.proc.kill()
            stack.gateway.proc.wait()
            stack.start()
    ids = stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550199", "text": "g", "count": 100, "group": group})
    expected[group] = set(ids["ids"])
    done = wait_for(lambda: (d := stack.device(PHONE))["messages_acked"] == 10_000 and d, 90, "10,000 acknowledged")
    assert done["decrypt_failures"] == 0

    chats = pages(stack, "/api/main/chats", limit=30)
    assert len(chats) == 100
    assert {c["id"] for c in chats} == set(expected)
    assert all(c["messages"] == 100 for c in chats)
    named = {c["id"]: c["name"] for c in chats}
    assert named[group] == "Team"
    assert named[PEER_ID] == "Ann"
    stored: list[str] = []
    for chat in expected:
        items = pages(stack, f"/api/main/chats/{chat}/messages", limit=40)
        assert {bare(m) for m in items} == expected[chat]
        assert all(m["from"] == chat and not m["fromMe"] and m["_data"]["status"] == "received" for m in items)
        stored.extend(bare(m) for m in items)
    assert len(stored) == len(set(stored)) == 10_000
    received = [e["payload"]["_data"]["id"] for e in all_events(stack, "message")]  # WhatsApp's id
    assert Counter(received).most_common(1)[0][1] == 1  # one event per message, even for the redelivered ones
    assert set(received) == set(stored)
    group_page = pages(stack, f"/api/main/chats/{group}/messages", limit=100, sortOrder="asc")
    assert (group_page[0]["from"], group_page[0]["participant"]) == (group, "15550199@c.us")
    assert group_page[0]["body"] == "g #1"
    with stack.http as http:
        groups = http.get("/api/main/groups").json()
        assert [(g["id"], g["subject"]) for g in groups] == [(group, "Team")]
        contacts = {c["id"]: c for c in pages(stack, "/api/contacts/all", limit=50, session="main")}
        assert contacts[PEER_ID]["name"] == "Ann"
        assert contacts["15550150@c.us"]["pushname"] == "User 0150"


def test_queued_messages_survive_sigkill_and_reach_the_phone_exactly_once(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(WAGATE_SEND_RATE="1800", WAGATE_SEND_BURST="10")  # 30 a second: ~17 s to drain
    stack.start()
    stack.tenant()
    stack.link("main", PHONE)
    body = {"session": "main", "chatId": "+15550100"}
    with stack.http as http, ThreadPoolExecutor(8) as pool:  # one client: its connections are reused
        answers = list(pool.map(lambda n: http.post("/api/sendText", json={**body, "text": f"out {n}"}), range(500)))
    assert [a.status_code for a in answers] == [201] * 500
    queued = [bare(a.json()) for a in answers]
    wait_for(lambda: len(sim_sent(stack)) >= 100, 20, "sending under way")
    assert stack.gateway is not None
    stack.gateway.proc.kill()  # SIGKILL while the queue drains
    stack.gateway.proc.wait()
    assert len(sim_sent(stack)) < 500
    stack.start()
    wait_for(lambda: stack.device(PHONE)["sent"] >= 500, 30, "the queue drained")
    items = wait_for(
        lambda: (
            (m := pages(stack, f"/api/main/chats/{PEER}/messages", limit=200))
            and all(x["_data"]["status"] == "delivered" for x in m)
            and m
        ),
        20,
        "every message delivered",
    )
    at_sim = Counter(m["id"] for m in sim_sent(stack))
    assert at_sim == Counter(queued)  # each exactly once, none unknown
    assert sorted(bare(m) for m in items) == sorted(queued)
    assert all(m["_data"]["attempts"] >= 1 for m in items)
    time.sleep(0.5)
    assert stack.device(PHONE)["sent"] == 500  # nothing sent twice afterwards either


def test_rate_limit_queue_bound_conflicts_and_idempotent_retries(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(WAGATE_SEND_QUEUE_MAX="8")
    stack.start()
    stack.tenant()
    stack.link("paced", PHONE, config={"send_rate": 120, "send_burst": 2})  # 2 a second
    answered_at: list[float] = []  # when each send was answered (the simulator's clock is this machine's)
    for n in range(8):
        assert send(stack, f"paced {n}", session="paced").status_code == 201
        answered_at.append(time.time())
    wait_for(lambda: len(sim_sent(stack)) == 8, 15, "the paced messages")
    times = [m["ts"] for m in sim_sent(stack)]
    # The burst goes at once: the second message as soon as it is queued, not after the pace's 0.5 s (measured from
    # its acceptance, so that a slow request of this test's own does not count).
    assert times[1] - answered_at[1] < 0.3, (times, answered_at)
    for index in range(2, 8):  # then one every 0.5 s, measured at the simulator
        assert times[index] - times[0] >= (index - 1) * 0.5 - 0.05, times
    assert times[-1] - times[0] < 3.5 + 1.0

    stack.link("slow", "+15550002", config={"send_rate": 1, "send_burst": 1})
    first_slow = send(stack, "slow first", session="slow").json()  # the burst: it goes out at once
    wait_for(lambda: status(stack, first_slow["id"], "slow") == "delivered", 10, "the first slow one")
    accepted = [send(stack, f"slow {n}", session="slow") for n in range(8)]  # these wait: one a minute
    assert [a.status_code for a in accepted] == [201] * 8
    full = send(stack, "one too many", session="slow")
    assert full.status_code == 429
    assert full.json()["error"]["code"] == "queue_full"
    assert full.headers["Retry-After"] == "60"

    first = send(stack, "once only", session="paced", key="order-17")
    again = send(stack, "once only", session="paced", key="order-17")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    reused = send(stack, "something else", session="paced", key="order-17")
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    wait_for(lambda: status(stack, first.json()["id"], "paced") == "delivered", 10, "the keyed message")
    assert [m["text"] for m in sim_sent(stack)].count("once only") == 1

    with stack.http as http:
        assert http.post("/api/sessions", json={"name": "unlinked"}).status_code == 201
    stack.wait_status("unlinked", "SCAN_QR_CODE")
    refused = send(stack, "not yet", session="unlinked")
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "session_not_working",
        "message": "session 'unlinked' is SCAN_QR_CODE, not WORKING: it cannot send now",
        "status": "SCAN_QR_CODE",
    }
    assert send(stack, "nobody", session="missing").status_code == 404


def test_tenants_never_see_each_others_messages(stack_factory: Callable[..., Stack], receiver: Receiver) -> None:
    stack = stack_factory(**HOOKS)
    stack.start()
    key_a = stack.tenant("a")
    hook_a = add_webhook(stack, key_a, receiver.url("/a"))
    receiver.secrets["/a"] = hook_a["secret"]
    stack.link("alpha", PHONE)
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "secret-a", "count": 3})
    out_a = send(stack, "outbound-a", session="alpha").json()
    wait_for(lambda: status(stack, out_a["id"], "alpha") == "delivered", 10, "A's message delivered")
    a_inbound = pages(stack, f"/api/alpha/chats/{PEER}/messages", limit=10)
    assert len(a_inbound) == 4

    key_b = stack.tenant("b")
    hook_b = add_webhook(stack, key_b, receiver.url("/b"))
    receiver.secrets["/b"] = hook_b["secret"]
    stack.link("main", "+15550002")
    with connect(ws_url(stack, "events=*"), additional_headers=key_b) as ws:
        stack.sim_post("/devices/+15550002/messages", {"from": "+15550100", "text": "hello-b", "count": 1})
        stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "secret-a", "count": 1})
        seen = read_until(ws, lambda got: any(e.get("payload", {}).get("body") == "hello-b" for e in got), 10)
    assert "secret-a" not in json.dumps(seen)

    b = loopback.client(base_url=stack.gateway.base_url if stack.gateway else "", headers=key_b, timeout=15)
    with b:
        for path in (
            "/api/alpha/chats",
            f"/api/alpha/chats/{PEER}/messages",
            f"/api/alpha/messages/{out_a['id']}",
            f"/api/alpha/messages/{a_inbound[0]['id']}",
            "/api/alpha/contacts",
            "/api/alpha/groups",
            f"/api/main/messages/{out_a['id']}",
        ):
            response = b.get(path)
            assert response.status_code == 404, (path, response.text)
        for route, body in (
            ("/api/sendText", {"text": "x"}),
            ("/api/sendFile", {"file": {"data": "eA=="}}),
            ("/api/sendImage", {"file": {"data": "eA==", "mimetype": "image/png"}}),
            ("/api/sendVoice", {"file": {"data": "eA==", "mimetype": "audio/ogg"}}),
        ):
            response = b.post(route, json={"session": "alpha", "chatId": "+15550100", **body})
            assert response.status_code == 404, (route, response.text)
        assert pages_with(b, "/api/main/chats") == [PEER_ID]
    wait_for(lambda: any(r.path == "/b" for r in receiver.received), 10, "B's webhook")
    for delivery in receiver.received:
        if delivery.path == "/b":
            assert b"secret-a" not in delivery.body
            assert b"outbound-a" not in delivery.body
            assert delivery.envelope["session"] == "main"


def pages_with(client: httpx.Client, path: str) -> list[str]:
    return [c["id"] for c in client.get(path).json()]


def test_message_bodies_are_not_readable_in_the_database_file(stack: Stack, tmp_path: Path) -> None:
    stack.link("main", PHONE)
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550100", "text": "MARKER-INBOUND-7f3a", "count": 1})
    sent = send(stack, "MARKER-OUTBOUND-9c1d").json()
    wait_for(lambda: status(stack, sent["id"]) == "delivered", 10, "the message delivered")
    inbound = wait_for(lambda: pages(stack, f"/api/main/chats/{PEER}/messages", limit=10), 10, "the stored messages")
    assert {m["body"] for m in inbound} == {"MARKER-INBOUND-7f3a", "MARKER-OUTBOUND-9c1d"}  # stored, readable by API
    assert stack.gateway is not None
    assert stack.gateway.terminate() == 0
    files = [p for p in (tmp_path / "data").iterdir() if p.name.startswith("wagate.db")]
    assert files
    for path in files:
        raw = path.read_bytes()
        assert b"MARKER-INBOUND" not in raw, path
        assert b"MARKER-OUTBOUND" not in raw, path
    # The same search finds the text where it is kept in the clear (the simulator's record of what it received,
    # which the simulator writes to its file every half second or so).
    state = tmp_path / "sim-state.json"
    # (written lazily: under load its first write may come after this point)
    wait_for(lambda: state.exists() and b"MARKER-OUTBOUND-9c1d" in state.read_bytes(), 10, "the simulator's state file")

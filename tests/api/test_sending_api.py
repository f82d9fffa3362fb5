"""Sending with every field of WAHA's request schemas, through the real ASGI app on a real store: the caller's
message id, serialized reply ids, fields accepted with no effect yet, voice conversion, and idempotent replays."""

from __future__ import annotations

import base64
import re
from typing import Any

from httpx import AsyncClient

from tests.support.api import assert_error, key_hash, make_tenant, text, working_session
from wagate.api.routes.sending import NEW_MESSAGE_ID
from wagate.gateway import Gateway

OGG = base64.b64encode(b"OggS" + bytes(60)).decode()
MP3 = base64.b64encode(b"ID3" + bytes(60)).decode()


async def queued_ids(gateway: Gateway, key: dict[str, str]) -> list[str]:
    found = await gateway.store.api_keys.find_active(key_hash(key))
    assert found is not None
    assert found.tenant_id is not None
    session = await gateway.store.sessions.get(found.tenant_id, "main")
    assert session is not None
    return [m.id for m in await gateway.store.messages.queued(found.tenant_id, session.id, 100)]


async def test_every_field_of_waha_s_send_text_is_taken(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    body = text(
        id="BBBBBBBBBBBBBBBBB",
        reply_to="false_15550100@c.us_AAAAAAAAAAAAAAAAAAAA",
        linkPreview=True,
        linkPreviewHighQuality=True,
        mentions=["15550100@c.us", "+15550200"],
    )
    made = await client.post("/api/sendText", json=body, headers=key)
    assert made.status_code == 201, made.text
    sent = made.json()
    assert (sent["id"], sent["_data"]["id"]) == ("true_15550100@c.us_BBBBBBBBBBBBBBBBB", "BBBBBBBBBBBBBBBBB")
    assert sent["replyTo"]["id"] == "AAAAAAAAAAAAAAAAAAAA"  # the bare id, as the engine quotes it
    assert await queued_ids(gateway, key) == ["BBBBBBBBBBBBBBBBB"]
    for null in ("id", "reply_to", "mentions"):  # what WAHA's SDKs send for a field left unset
        answer = await client.post("/api/sendText", json=text() | {null: None}, headers=key)
        assert answer.status_code == 201, (null, answer.text)
    default = await client.post("/api/sendText", json={"chatId": "+15550100", "text": "hi"}, headers=key)
    assert_error(default, 404, "session_not_found")  # no session given: WAHA's "default", which this tenant lacks


async def test_a_message_id_is_the_callers_once(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    assert (await client.post("/api/sendText", json=text(id="ABC123"), headers=key)).status_code == 201
    again = await client.post("/api/sendText", json=text(id="ABC123", text="other"), headers=key)
    assert_error(again, 422, "message_id_taken")
    for bad in (
        text(id="has_underscore"),
        text(id=""),
        text(id="x" * 65),
        text(mentions=["not a number"]),
        text(mentions="15550100@c.us"),
        text(linkPreview="sometimes"),
        text(reply_to="has space"),
    ):
        assert_error(await client.post("/api/sendText", json=bad, headers=key), 422)
    assert await queued_ids(gateway, key) == ["ABC123"]


async def test_a_new_message_id_is_made_for_the_session_s_next_send(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    made = [await client.get("/api/main/new-message-id", headers=key) for _ in range(2)]
    assert [m.status_code for m in made] == [200, 200], made[0].text
    first, second = (m.json()["id"] for m in made)
    assert first != second
    assert re.fullmatch(NEW_MESSAGE_ID, first), first
    assert first.startswith("3EB0"), first
    sent = await client.post("/api/sendText", json=text(id=first), headers=key)
    assert sent.json()["id"] == f"true_15550100@c.us_{first}", sent.text
    assert_error(await client.get("/api/other/new-message-id", headers=key), 404, "session_not_found")
    other = await make_tenant(client, "b")  # another tenant's key does not see the session
    assert_error(await client.get("/api/main/new-message-id", headers=other), 404, "session_not_found")
    assert_error(await client.get("/api/main/new-message-id"), 401)


async def test_an_idempotent_replay_answers_the_same_wamessage(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    headers = key | {"Idempotency-Key": "order-17"}
    first = await client.post("/api/sendText", json=text(), headers=headers)
    again = await client.post("/api/sendText", json=text(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert (first.headers.get("idempotent-replayed"), again.headers["idempotent-replayed"]) == (None, "true")
    assert len(await queued_ids(gateway, key)) == 1


async def test_voice_is_sent_as_given_and_conversion_asks_for_ogg_opus(client: AsyncClient, gateway: Gateway) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)

    def voice(data: str, mimetype: str, convert: bool) -> dict[str, object]:
        file = {"data": data, "mimetype": mimetype, "filename": "v"}
        return {"session": "main", "chatId": "+15550100", "file": file, "convert": convert}

    for body in (voice(OGG, "audio/ogg; codecs=opus", True), voice(MP3, "audio/mpeg", False)):
        made = await client.post("/api/sendVoice", json=body, headers=key)
        assert made.status_code == 201, made.text
        assert (made.json()["hasMedia"], made.json()["media"]["mimetype"]) == (True, body["file"]["mimetype"])  # type: ignore[index]
    refused = await client.post("/api/sendVoice", json=voice(MP3, "audio/mpeg", True), headers=key)
    assert_error(refused, 422, "conversion_unsupported")
    assert len(await queued_ids(gateway, key)) == 2


async def test_videos_places_cards_and_polls_are_checked_before_they_are_queued(
    client: AsyncClient, gateway: Gateway
) -> None:
    key = await make_tenant(client, "a")
    await working_session(client, gateway, key)
    mp4 = base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode()
    good: dict[str, dict[str, Any]] = {
        "/api/sendVideo": {"file": {"data": mp4, "mimetype": "video/mp4"}, "asNote": True, "convert": True},
        "/api/sendLocation": {"latitude": -33.9, "longitude": 151.2, "title": "Quay", "id": "LOC1"},
        "/api/sendContactVcard": {
            "contacts": [{"fullName": "Ann", "phoneNumber": "+15550300", "whatsappId": "15550300"}]
        },
        "/api/sendPoll": {"poll": {"name": "Q?", "options": ["a", "b", "c"], "multipleAnswers": True}},
    }
    for path, fields in good.items():
        made = await client.post(path, json=text() | {"text": None} | fields, headers=key)
        assert made.status_code == 422  # a field of another send (text) is refused
        made = await client.post(path, json={"session": "main", "chatId": "+15550100", **fields}, headers=key)
        assert made.status_code == 201, (path, made.text)
    bad: list[tuple[str, dict[str, Any], str | None]] = [
        ("/api/sendVideo", {"file": {"data": mp4, "mimetype": "image/png"}}, "invalid_media"),
        (
            "/api/sendVideo",
            {"file": {"data": mp4, "mimetype": "video/quicktime"}, "convert": True},
            "conversion_unsupported",
        ),
        ("/api/sendLocation", {"latitude": 91, "longitude": 0}, None),
        ("/api/sendLocation", {"latitude": 0, "longitude": -180.5}, None),
        ("/api/sendLocation", {"latitude": "north", "longitude": 0}, None),
        ("/api/sendContactVcard", {"contacts": []}, None),
        ("/api/sendContactVcard", {"contacts": [{"vcard": "BEGIN:VCARD\nTEL:+1\nEND:VCARD"}]}, "invalid_vcard"),
        ("/api/sendContactVcard", {"contacts": [{"vcard": "FN:Ann"}]}, "invalid_vcard"),
        ("/api/sendContactVcard", {"contacts": [{"fullName": "Ann"}]}, "invalid_vcard"),
        ("/api/sendContactVcard", {"contacts": [{"fullName": "A\nB", "phoneNumber": "+1555"}]}, None),
        ("/api/sendPoll", {"poll": {"name": "Q?", "options": ["a"]}}, None),
        ("/api/sendPoll", {"poll": {"name": "Q?", "options": [str(n) for n in range(13)]}}, None),
        ("/api/sendPoll", {"poll": {"name": "Q?", "options": ["a", "a"]}}, "invalid_poll"),
        ("/api/sendPoll", {"poll": {"name": "", "options": ["a", "b"]}}, None),
    ]
    for path, fields, code in bad:
        refused = await client.post(path, json={"session": "main", "chatId": "+15550100", **fields}, headers=key)
        assert_error(refused, 422, code)
    assert len(await queued_ids(gateway, key)) == len(good)

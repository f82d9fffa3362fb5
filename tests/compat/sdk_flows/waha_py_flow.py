"""A whole session driven through ``waha-py`` (WAHA's SDK generated from its OpenAPI document), every answer read
through that SDK's own models (``waha.models``).

Requests go as the SDK's models where the generated model can hold what WAHA documents, and as the plain dicts the
SDK also takes where it cannot. WAHA's OpenAPI document, which the SDK is generated from, types three strings as
objects (its own examples and its servers write strings): a webhook's ``events``, a webhook body's ``event`` and a
voice file's ``mimetype``; and the generator dropped one ``nullable`` (a session's ``timestamps.activity``). Requests
carrying such a field go as dicts, and answers carrying one are read field by field through the SDK's models
(:func:`read`), that field checked as WAHA's document and servers write it. A model is sent as ``model_dump()``, so
every optional field WAHA defines goes as an explicit ``null``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from pydantic import TypeAdapter
from waha import WahaClient, models

from tests.compat.sdk_flows.common import (
    FILE,
    IMAGE,
    VIDEO,
    VOICE,
    Flow,
    Hooks,
    Phone,
    decode_qr,
    is_status,
    step,
    until,
)

__all__ = ["link", "lists", "main", "read", "send", "wind_down"]


def read(model: Any, answer: dict[str, Any], **as_waha: Callable[[Any], Any]) -> Any:
    """``answer`` through ``model``, field by field with the model's own type for each, and the fields named in
    ``as_waha`` by the function given for them instead. What ``model_validate`` does, but for those fields."""
    assert isinstance(answer, dict), answer
    values: dict[str, Any] = {}
    for name, spec in model.model_fields.items():
        key = spec.alias or name
        if key not in answer:
            assert not spec.is_required(), f"{model.__name__}: {key} is missing"
            continue
        given = as_waha.get(name)
        if given is not None:
            values[name] = given(answer[key])
            continue
        typed: Any = Annotated[spec.annotation, spec]  # the field's type with its constraints
        values[name] = TypeAdapter(typed).validate_python(answer[key])
    return model.model_construct(**values)


def _names(events: Any) -> list[str]:
    assert isinstance(events, list), events
    assert all(isinstance(event, str) for event in events), events
    return events


def _config(config: Any) -> Any:
    """A session's ``config``, its webhooks' ``events`` as the strings WAHA writes."""
    if config is None:
        return None

    def webhooks(given: Any) -> list[Any]:
        return [read(models.WebhookConfig, hook, events=_names) for hook in given or []]

    return read(models.SessionConfig, config, webhooks=webhooks)


def _timestamps(timestamps: Any) -> Any:
    """``SessionInfo.timestamps``: WAHA's document makes ``activity`` nullable (null while nothing ran), the SDK's
    generated ``Timestamps`` does not, so it is read as the document says."""
    assert isinstance(timestamps, dict), timestamps
    activity = timestamps["activity"]
    assert activity is None or isinstance(activity, int | float), activity
    return models.Timestamps.model_construct(activity=activity)


def _session(model: Any, answer: dict[str, Any]) -> Any:
    if "timestamps" in model.model_fields:
        return read(model, answer, config=_config, timestamps=_timestamps)
    return read(model, answer, config=_config)


def _event(model: Any, body: dict[str, Any], name: str) -> Any:
    """A webhook's body through its model, ``event`` being the string ``name`` as WAHA writes it."""

    def event(given: Any) -> str:
        assert given == name, given
        return name

    return read(model, body, event=event)


def _status(client: Any, flow: Flow, wanted: str, linked: bool | None = None) -> Any:
    """The session once it is ``wanted`` (and, if ``linked`` is given, has a ``me`` or has none)."""

    def check() -> Any:
        info = _session(models.SessionInfo, client.sessions.get(flow.session))
        if info.status.value != wanted or (linked is not None and (info.me is not None) != linked):
            return None
        return info

    what = wanted if linked is None else f"{wanted} and {'linked' if linked else 'logged out'}"
    return until(check, f"{flow.session} to be {what}")


def _sent(answer: Any, flow: Flow, body: str | None = None) -> Any:
    message = models.WAMessage.model_validate(answer)
    assert message.fromMe is True
    assert message.to == flow.peer_id, message.to
    assert message.from_ == flow.me_id, message.from_
    assert message.id.startswith(f"true_{flow.peer_id}_"), message.id
    if body is not None:
        assert message.body == body
    return message


def _missing(client: Any, flow: Flow) -> int | None:
    """The status the gateway answers a read of the flow's session with, if it is an error."""
    try:
        client.sessions.get(flow.session)
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    return None


def main() -> None:
    flow = Flow.from_argv()
    hooks = Hooks()
    client = WahaClient(flow.base_url, api_key=flow.api_key)
    link(client, flow, hooks)
    send(client, flow, hooks)
    lists(client, flow)
    wind_down(client, flow, hooks)
    client.close()
    hooks.close()


def link(client: Any, flow: Flow, hooks: Hooks) -> None:
    """Create (with a webhook), start, read the QR code, scan it, ``me``, the webhook saying WORKING."""
    events = ["session.status", "message", "message.any"]
    with step("create the session with config.webhooks"):
        config = {"metadata": {"user.id": "42"}, "webhooks": [{"url": hooks.url, "events": events}]}
        created = client.sessions.create({"name": flow.session, "start": False, "config": config})
        dto = _session(models.SessionDTO, created)
        assert (dto.name, dto.status.value) == (flow.session, "STOPPED")
        assert dto.config is not None
        assert dto.config.metadata == {"user.id": "42"}
        assert [(hook.url, hook.events) for hook in dto.config.webhooks or []] == [(hooks.url, events)]

    with step("start"):
        started = _session(models.SessionDTO, client.sessions.start(flow.session))
        assert started.name == flow.session
        _status(client, flow, "SCAN_QR_CODE")

    with step("read the QR code"):

        def both() -> Any:  # the code as text, once its picture says the same (it rotates while waiting)
            raw = models.QRCodeValue.model_validate(client.auth.get_qr(flow.session, params={"format": "raw"}))
            picture = models.Base64File.model_validate(client.auth.get_qr(flow.session, params={"format": "image"}))
            assert picture.mimetype == "image/png"
            return raw if decode_qr(base64.b64decode(picture.data)) == raw.value else None

        raw = until(both, "the QR code's picture to match its text")

    with step("scan it with the phone"):
        Phone(flow).scan(raw.value)
        working = _status(client, flow, "WORKING")
        assert working.me is not None, f"WORKING with no me: {working!r}"
        assert working.me.id == flow.me_id

    with step("me"):
        me = models.MeInfo.model_validate(client.sessions.get_me(flow.session))
        assert me.id == flow.me_id

    with step("a session.status webhook"):
        body = hooks.wait("session.status WORKING", lambda b: is_status(b, "WORKING"))
        status = _event(models.WAHAWebhookSessionStatus, body, "session.status")
        assert status.session == flow.session
        assert status.metadata == {"user.id": "42"}


def send(client: Any, flow: Flow, hooks: Hooks) -> None:
    """Every kind of send, then a message from the contact, as a webhook."""
    with step("sendText"):  # with an id made first, as a caller that stores it before sending does
        made = models.NewMessageIDResponse.model_validate(client.chatting.get_new_message_id(flow.session))
        text = models.MessageTextRequest(
            chatId=flow.peer_id, text="hello from waha-py", session=flow.session, id=made.id
        )
        sent = _sent(client.chatting.send_text(text), flow, "hello from waha-py")
        assert sent.hasMedia is False
        assert sent.id == f"true_{flow.peer_id}_{made.id}", (sent.id, made.id)

    with step("sendImage"):
        image = models.BinaryFile(mimetype="image/png", filename="dot.png", data=IMAGE)
        request = models.MessageImageRequest(chatId=flow.peer_id, file=image, caption="a dot", session=flow.session)
        assert _sent(client.chatting.send_image(request), flow).hasMedia is True

    with step("sendFile"):
        document = models.BinaryFile(mimetype="application/pdf", filename="note.pdf", data=FILE)
        request_file = models.MessageFileRequest(chatId=flow.peer_id, file=document, session=flow.session)
        assert _sent(client.chatting.send_file(request_file), flow).hasMedia is True

    with step("sendVoice"):
        voice = {"mimetype": "audio/ogg; codecs=opus", "filename": "hi.opus", "data": VOICE}
        answer = client.chatting.send_voice(
            {"chatId": flow.peer_id, "file": voice, "convert": False, "session": flow.session}
        )
        assert _sent(answer, flow).hasMedia is True

    with step("sendVideo"):
        video = {"mimetype": "video/mp4", "filename": "clip.mp4", "data": VIDEO}
        answer = client.chatting.send_video(
            {"chatId": flow.peer_id, "file": video, "convert": False, "asNote": True, "session": flow.session}
        )
        assert _sent(answer, flow).hasMedia is True

    with step("sendLocation"):
        place = models.MessageLocationRequest(
            chatId=flow.peer_id, latitude=38.8937255, longitude=-77.0969763, title="Our office", session=flow.session
        )
        sent = _sent(client.chatting.send_location(place), flow)
        assert sent.location is not None
        assert (sent.location.latitude, sent.location.name) == ("38.8937255", "Our office")

    with step("sendContactVcard"):
        vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Jane Doe\nTEL;type=CELL;waid=15550300:+1 555 0300\nEND:VCARD"
        contacts = models.MessageContactVcardRequest(
            chatId=flow.peer_id, contacts=[models.VCardContact(vcard=vcard)], session=flow.session
        )
        assert _sent(client.chatting.send_contact_vcard(contacts), flow).vCards == [vcard]

    with step("sendPoll"):
        # The SDK's MessagePoll types multipleAnswers as an object (WAHA's document does): the request goes as JSON.
        poll = {"name": "How are you?", "options": ["Awesome!", "Good!"], "multipleAnswers": False}
        sent = _sent(client.chatting.send_poll({"chatId": flow.peer_id, "poll": poll, "session": flow.session}), flow)
        assert sent.field_data is not None
        assert sent.field_data["poll"]["options"] == ["Awesome!", "Good!"]

    with step("an inbound message, as a webhook"):
        Phone(flow).receive("hello from the phone")
        body = hooks.wait("the inbound message", lambda b: b.get("event") == "message")
        # What a WAHA handler reads, then the SDK's model of the whole body.
        assert (body["payload"]["body"], body["payload"]["from"]) == ("hello from the phone", flow.peer_id)
        inbound = _event(models.WAHAWebhookMessage, body, "message")
        assert inbound.session == flow.session
        assert inbound.payload.fromMe is False
        assert inbound.me is not None
        assert inbound.me.id == flow.me_id


def lists(client: Any, flow: Flow) -> None:
    """The sessions, the chats (and their overview), a chat's messages and a page of them."""
    with step("list the sessions"):
        listed = [_session(models.SessionInfo, s) for s in client.sessions.list(params={"all": True})]
        assert [(s.name, s.status.value) for s in listed] == [(flow.session, "WORKING")]

    with step("list the chats"):
        chats = client.chats.get_chats(flow.session, params={"limit": 10, "offset": 0})
        assert isinstance(chats, list)
        assert flow.peer_id in [chat["id"] for chat in chats]
        overview = [models.ChatSummary.model_validate(c) for c in client.chats.get_chats_overview(flow.session)]
        assert flow.peer_id in [chat.id for chat in overview]

    with step("list a chat's messages"):
        params = {"limit": 10, "downloadMedia": False}
        page = client.chats.get_chat_messages(flow.session, flow.peer_id, params=params)
        messages = [models.WAMessage.model_validate(m) for m in page]
        assert len(messages) == 9, [m.body for m in messages]
        assert "hello from the phone" in [m.body for m in messages if not m.fromMe]
        second = client.chats.get_chat_messages(flow.session, flow.peer_id, params={"limit": 2, "offset": 2})
        assert [m["id"] for m in second] == [m.id for m in messages[2:4]]


def wind_down(client: Any, flow: Flow, hooks: Hooks) -> None:
    """Restart (WORKING again without a scan), stop, logout, delete."""
    with step("restart"):
        restarted = _session(models.SessionDTO, client.sessions.restart(flow.session))
        assert restarted.name == flow.session
        hooks.wait_count("WORKING again", lambda b: is_status(b, "WORKING"), 2)
        _status(client, flow, "WORKING")

    with step("stop"):
        stopped = _session(models.SessionDTO, client.sessions.stop(flow.session))
        assert stopped.name == flow.session
        _status(client, flow, "STOPPED")

    with step("logout"):
        logged_out = _session(models.SessionDTO, client.sessions.logout(flow.session))
        assert logged_out.name == flow.session
        _status(client, flow, "STOPPED", linked=False)  # logging out takes effect as stopping does: soon

    with step("delete"):
        client.sessions.delete(flow.session)
        assert _missing(client, flow) == 404


if __name__ == "__main__":
    main()

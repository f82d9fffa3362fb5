"""A whole session driven through ``waha`` (the hand-written WAHA SDK), every answer read through that SDK's own
models (``waha.types``).

Three of the SDK's calls cannot work as they stand against WAHA itself, whatever the gateway does:

- ``auth.get_qr_code(format=RAW)`` reads the answer as ``{"qr": …}`` where WAHA gives ``{"value": …}``: not used;
- ``auth.get_qr_code(format=IMAGE)`` expects the PNG while the client asks for JSON (``Accept: application/json`` on
  every request): the flow reads the picture through a client made with ``headers={"Accept": "image/png"}``, the
  SDK's own option, as a user of this SDK against WAHA has to;
- ``chats.list`` calls ``GET /api/chats``, which WAHA does not have (its chats are ``GET /api/{session}/chats``):
  not used.
"""

from __future__ import annotations

from typing import Any

from waha import WahaAPIError, WahaClient
from waha.types import Base64File, ContactVcard, MeInfo, QRFormat, SessionDTO, SessionInfo, WAMessage

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

__all__ = ["link", "lists", "main", "send", "wind_down"]


def _status(client: Any, flow: Flow, wanted: str, linked: bool | None = None) -> Any:
    """The session once it is ``wanted`` (and, if ``linked`` is given, has a ``me`` or has none)."""

    def check() -> Any:
        info = client.sessions.get(flow.session)
        assert isinstance(info, SessionInfo)
        if info.status != wanted or (linked is not None and (info.me is not None) != linked):
            return None
        return info

    what = wanted if linked is None else f"{wanted} and {'linked' if linked else 'logged out'}"
    return until(check, f"{flow.session} to be {what}")


def _sent(answer: Any, flow: Flow, body: str | None = None) -> Any:
    message = answer if isinstance(answer, WAMessage) else WAMessage(**answer)
    assert message.fromMe is True
    assert message.from_ is not None
    assert message.from_.id == flow.me_id, message.from_
    assert message.id.startswith(f"true_{flow.peer_id}_"), message.id
    if body is not None:
        assert message.body == body
    return message


def _missing(client: Any, flow: Flow) -> int | None:
    """The status the gateway answers a read of the flow's session with, if it is an error."""
    try:
        client.sessions.get(flow.session)
    except WahaAPIError as exc:
        status: int | None = exc.status_code
        return status
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
    """Create (with a webhook), start, read the QR code's picture, scan it, ``me``, the webhook saying WORKING."""
    with step("create the session with config.webhooks"):
        events = ["session.status", "message"]
        config = {"webhooks": [{"url": hooks.url, "events": events}]}
        dto = client.sessions.create(flow.session, config=config, start=False)
        assert isinstance(dto, SessionDTO)
        assert (dto.name, dto.status) == (flow.session, "STOPPED")
        assert dto.config is not None
        assert [(hook["url"], hook["events"]) for hook in dto.config.webhooks or []] == [(hooks.url, events)]

    with step("start"):
        assert client.sessions.start(flow.session).name == flow.session
        _status(client, flow, "SCAN_QR_CODE")

    with step("read the QR code"):
        with WahaClient(flow.base_url, api_key=flow.api_key, headers={"Accept": "image/png"}) as pictures:
            png = pictures.auth.get_qr_code(flow.session, format=QRFormat.IMAGE)
        assert isinstance(png, bytes)
        qr = decode_qr(png)

    with step("scan it with the phone"):
        Phone(flow).scan(qr)
        working = _status(client, flow, "WORKING")
        assert working.me is not None, f"WORKING with no me: {working!r}"
        assert working.me["id"] == flow.me_id

    with step("me"):
        me = client.sessions.get_me(flow.session)
        assert isinstance(me, MeInfo)
        assert me.id == flow.me_id

    with step("a session.status webhook"):
        body = hooks.wait("session.status WORKING", lambda b: is_status(b, "WORKING"))
        assert body["session"] == flow.session


def send(client: Any, flow: Flow, hooks: Hooks) -> None:
    """Every kind of send, then a message from the contact, as a webhook."""
    with step("sendText"):
        sent = client.messages.send_text(flow.peer_id, "hello from waha", session=flow.session)
        _sent(sent, flow, "hello from waha")

    with step("sendImage"):
        image = Base64File(mimetype="image/png", filename="dot.png", data=IMAGE)
        answer = client.messages.send_image(flow.peer_id, image, session=flow.session, caption="a dot")
        assert _sent(answer, flow).hasMedia is True

    with step("sendFile"):
        document = Base64File(mimetype="application/pdf", filename="note.pdf", data=FILE)
        assert _sent(client.messages.send_file(flow.peer_id, document, session=flow.session), flow).hasMedia is True

    with step("sendVoice"):
        voice = Base64File(mimetype="audio/ogg; codecs=opus", filename="hi.opus", data=VOICE)
        assert _sent(client.messages.send_voice(flow.peer_id, voice, session=flow.session), flow).hasMedia is True

    with step("sendVideo"):
        video = Base64File(mimetype="video/mp4", filename="clip.mp4", data=VIDEO)
        answer = client.messages.send_video(flow.peer_id, video, session=flow.session, caption="a clip")
        assert _sent(answer, flow, "a clip").hasMedia is True

    with step("sendLocation"):
        answer = client.messages.send_location(flow.peer_id, 40.7128, -74.006, session=flow.session, title="NYC")
        _sent(answer, flow)
        assert answer["location"]["name"] == "NYC"  # this SDK's WAMessage model has no location: the answer has

    with step("sendContactVcard"):
        card = ContactVcard(fullName="John Doe", phoneNumber="+15550300", organization="Shop")
        answer = client.messages.send_contact_vcard(flow.peer_id, [card], session=flow.session)
        _sent(answer, flow)
        assert "FN:John Doe" in answer["vCards"][0]

    with step("an inbound message, as a webhook"):
        Phone(flow).receive("hello from the phone")
        body = hooks.wait("the inbound message", lambda b: b.get("event") == "message")
        assert (body["payload"]["body"], body["payload"]["from"]) == ("hello from the phone", flow.peer_id)
        assert body["session"] == flow.session
        inbound = WAMessage(**body["payload"])
        assert inbound.fromMe is False


def lists(client: Any, flow: Flow) -> None:
    """The sessions, a chat's messages and a page of them (this SDK's chat list is not WAHA's route)."""
    with step("list the sessions"):
        listed = client.sessions.list(all=True)
        assert [(s.name, s.status) for s in listed] == [(flow.session, "WORKING")]

    with step("list a chat's messages"):
        messages = client.chats.get_messages(flow.peer_id, session=flow.session, limit=10, download_media=False)
        assert len(messages) == 8, [m.body for m in messages]
        assert "hello from the phone" in [m.body for m in messages if not m.fromMe]
        second = client.chats.get_messages(flow.peer_id, session=flow.session, limit=2, offset=2)
        assert [m.id for m in second] == [m.id for m in messages[2:4]]


def wind_down(client: Any, flow: Flow, hooks: Hooks) -> None:
    """Restart (WORKING again without a scan), stop, logout, delete."""
    with step("restart"):
        assert client.sessions.restart(flow.session).name == flow.session
        hooks.wait_count("WORKING again", lambda b: is_status(b, "WORKING"), 2)
        _status(client, flow, "WORKING")

    with step("stop"):
        assert client.sessions.stop(flow.session).name == flow.session
        _status(client, flow, "STOPPED")

    with step("logout"):
        assert client.sessions.logout(flow.session).name == flow.session
        _status(client, flow, "STOPPED", linked=False)  # logging out takes effect as stopping does: soon

    with step("delete"):
        client.sessions.delete(flow.session)
        assert _missing(client, flow) == 404


if __name__ == "__main__":
    main()

"""neonize's events, built from its own protobuf classes and passed through the wire format, mapped to engine events:
one test per kind of event the engine subscribes to."""

from __future__ import annotations

from typing import TypeVar

import pytest
from google.protobuf.message import Message as Proto
from neonize.proto import Neonize_pb2 as nz
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from wagate.engines.base import (
    DecryptFailed,
    Disconnected,
    EngineNotice,
    LoggedOut,
    MessageReceived,
    OutgoingMessage,
    Replaced,
    TemporarilyBanned,
)
from wagate.engines.neonize import mapping

P = TypeVar("P", bound=Proto)


def wire(message: P) -> P:
    """What the Go side hands over: the message serialised and parsed again."""
    parsed: P = type(message)()
    parsed.MergeFromString(message.SerializePartialToString())
    return parsed


def user(number: str, server: str = "s.whatsapp.net", device: int = 0) -> nz.JID:
    return nz.JID(User=number, Server=server, RawAgent=0, Device=device, Integrator=0, IsEmpty=False)


def info(
    message_id: str, sender: str = "15550002", *, from_me: bool = False, group: str | None = None
) -> nz.MessageInfo:
    chat = user(group, "g.us") if group else user(sender)
    source = nz.MessageSource(Chat=chat, Sender=user(sender, device=3), IsFromMe=from_me, IsGroup=group is not None)
    return nz.MessageInfo(MessageSource=source, ID=message_id, Pushname="Ana", Timestamp=1_700_000_000, Type="text")


def test_a_text_message_is_received_with_its_sender_chat_and_name() -> None:
    event = wire(nz.Message(Info=info("ABC1"), Message=e2e.Message(conversation="hello")))
    received = mapping.received(event)
    assert received == MessageReceived(
        message_id="ABC1",
        chat="15550002@s.whatsapp.net",
        sender="15550002@s.whatsapp.net",  # the device part is dropped
        text="hello",
        timestamp=1_700_000_000.0,
        push_name="Ana",
    )


def test_a_group_reply_in_an_ephemeral_wrapper_keeps_its_group_and_the_quoted_id() -> None:
    inner = e2e.Message(
        extendedTextMessage=e2e.ExtendedTextMessage(text="yes", contextInfo=e2e.ContextInfo(stanzaID="Q1"))
    )
    content = e2e.Message(ephemeralMessage=e2e.FutureProofMessage(message=inner))
    received = mapping.received(wire(nz.Message(Info=info("ABC2", group="1203630"), Message=content)))
    assert received is not None
    assert received.chat == "1203630@g.us"
    assert received.text == "yes"
    assert received.extra == {"replyTo": "Q1"}


def test_a_media_message_reports_what_it_is_never_its_keys() -> None:
    document = e2e.DocumentMessage(
        mimetype="application/pdf",
        fileLength=2048,
        fileName="bill.pdf",
        caption="your bill",
        fileSHA256=b"\x01" * 32,
        mediaKey=b"secret-key-material",
        URL="https://mmg.whatsapp.net/x",
    )
    received = mapping.received(wire(nz.Message(Info=info("ABC3"), Message=e2e.Message(documentMessage=document))))
    assert received is not None
    assert received.text == "your bill"
    assert received.media == {
        "type": "document",
        "mimetype": "application/pdf",
        "size": 2048,
        "sha256": "01" * 32,
        "filename": "bill.pdf",
    }
    voice = e2e.Message(audioMessage=e2e.AudioMessage(mimetype="audio/ogg; codecs=opus", fileLength=9, PTT=True))
    received_voice = mapping.received(wire(nz.Message(Info=info("ABC4"), Message=voice)))
    assert received_voice is not None
    assert received_voice.media is not None
    assert received_voice.media["voice"] is True


def test_our_own_messages_and_protocol_messages_are_not_stored_as_received() -> None:
    assert (
        mapping.received(wire(nz.Message(Info=info("M1", from_me=True), Message=e2e.Message(conversation="x")))) is None
    )
    protocol = e2e.Message(protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.Type.REVOKE))
    assert mapping.received(wire(nz.Message(Info=info("M2"), Message=protocol))) is None


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (nz.Receipt.ReceiptType.DELIVERED, "delivered"),
        (nz.Receipt.ReceiptType.READ, "read"),
        (nz.Receipt.ReceiptType.PLAYED, "read"),
        (nz.Receipt.ReceiptType.READ_SELF, None),
        (nz.Receipt.ReceiptType.RETRY, None),
        (nz.Receipt.ReceiptType.SERVER_ERROR, None),
    ],
)
def test_receipts_for_sent_messages_become_statuses(kind: int, status: str | None) -> None:
    source = nz.MessageSource(Chat=user("15550002"), Sender=user("15550002"), IsFromMe=False, IsGroup=False)
    event = wire(nz.Receipt(MessageSource=source, MessageIDs=["W1", "W2"], Timestamp=1_700_000_100, Type=kind))
    receipts = mapping.receipts(event)
    if status is None:
        assert receipts is None
    else:
        assert receipts == mapping.Receipts(("W1", "W2"), status, 1_700_000_100.0)


def test_an_undecryptable_message_is_a_decryption_failure_of_its_sender() -> None:
    event = wire(
        nz.UndecryptableMessage(
            Info=info("U1", sender="15550009"),
            IsUnavailable=False,
            DecryptFailMode=nz.UndecryptableMessage.DecryptFailModeT.DECRYPT_FAIL_SHOW,
        )
    )
    assert mapping.undecryptable(event) == DecryptFailed(contact="15550009@s.whatsapp.net", message_id="U1")


def test_stream_replaced_is_the_conflict() -> None:
    event = mapping.closing(wire(nz.StreamReplaced()), now=0)
    assert event == Replaced()
    assert event.permanent
    assert event.closing


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (nz.ConnectFailureReason.LOGGED_OUT, "logged_out"),
        (nz.ConnectFailureReason.MAIN_DEVICE_GONE, "main_device_gone"),
        (nz.ConnectFailureReason.UNKNOWN_LOGOUT, "unknown_logout"),
    ],
)
def test_logged_out_events_end_the_session_for_good(reason: int, expected: str) -> None:
    event = mapping.closing(wire(nz.LoggedOut(OnConnect=True, Reason=reason)), now=0)
    assert event == LoggedOut(expected)
    assert event.permanent
    failure = mapping.closing(wire(nz.ConnectFailure(Reason=reason, Message="401")), now=0)
    assert failure == LoggedOut(expected)


def test_connect_failures_other_than_logouts() -> None:
    banned = mapping.closing(wire(nz.ConnectFailure(Reason=nz.ConnectFailureReason.TEMP_BANNED)), now=0)
    assert isinstance(banned, TemporarilyBanned)
    assert banned.permanent
    outdated = mapping.closing(wire(nz.ConnectFailure(Reason=nz.ConnectFailureReason.CLIENT_OUTDATED)), now=0)
    assert isinstance(outdated, Disconnected)
    assert not outdated.retryable
    generic = mapping.closing(
        wire(nz.ConnectFailure(Reason=nz.ConnectFailureReason.SERVICE_UNAVAILABLE, Message="try later")), now=0
    )
    assert generic == Disconnected("WhatsApp refused the connection (service_unavailable: try later)", retryable=True)


def test_a_temporary_ban_says_until_when() -> None:
    event = wire(nz.TemporaryBan(Code=nz.TemporaryBan.TempBanReason.SEND_TO_TOO_MANY_PEOPLE, Expire=3600))
    assert mapping.closing(event, now=1000.0) == TemporarilyBanned(until=4600.0)


def test_client_outdated_is_not_retried() -> None:
    event = mapping.closing(wire(nz.ClientOutdated()), now=0)
    assert isinstance(event, Disconnected)
    assert not event.retryable


def test_notices_and_events_that_change_nothing() -> None:
    assert mapping.notice(wire(nz.KeepAliveTimeout(ErrorCount=2, LastSuccess=5))) == EngineNotice(
        "keepalive_timeout", {"errors": 2}
    )
    assert mapping.notice(wire(nz.KeepAliveRestored())) == EngineNotice("keepalive_restored", {})
    assert mapping.notice(wire(nz.StreamError(Code="515"))) == EngineNotice("stream_error", {"code": "515"})
    failed_pairing = nz.PairStatus(
        ID=user("1"), BusinessName="", Platform="", Status=nz.PairStatus.PStatus.ERROR, Error="bad code"
    )
    assert mapping.notice(wire(failed_pairing)) == EngineNotice("pair_error", {"error": "bad code"})
    assert mapping.closing(wire(nz.Connected(status=True)), now=0) is None
    assert mapping.notice(wire(nz.Connected(status=True))) is None


def test_calls_typing_presence_groups_and_profiles_are_engine_events() -> None:
    call = nz.BasicCallMeta(callID="C1", timestamp=1_700_000_000_123, callCreator=user("15550002"))
    getattr(call, "from").CopyFrom(user("15550002", device=4))
    assert mapping.notice(wire(nz.CallOffer(basicCallMeta=call))) == EngineNotice(
        "call.received", {"id": "C1", "from": "15550002@s.whatsapp.net", "timestamp": 1_700_000_000.123}
    )
    assert mapping.notice(wire(nz.CallTerminate(basicCallMeta=call, reason="timeout"))) == EngineNotice(
        "call.ended", {"id": "C1", "from": "15550002@s.whatsapp.net", "reason": "timeout"}
    )
    typing = nz.ChatPresence(
        MessageSource=info("M1").MessageSource,
        State=nz.ChatPresence.ChatPresence.COMPOSING,
        Media=nz.ChatPresence.ChatPresenceMedia.AUDIO,
    )
    assert mapping.notice(wire(typing)) == EngineNotice(
        "presence.chat",
        {"chat": "15550002@s.whatsapp.net", "from": "15550002@s.whatsapp.net", "state": "composing", "media": "audio"},
    )
    assert mapping.notice(wire(nz.Presence(From=user("15550003"), Unavailable=True, LastSeen=1_700_000_000))) == (
        EngineNotice("presence", {"from": "15550003@s.whatsapp.net", "online": False, "lastSeen": 1_700_000_000.0})
    )
    assert mapping.notice(wire(nz.Presence(From=user("15550003"), Unavailable=False))) == EngineNotice(
        "presence", {"from": "15550003@s.whatsapp.net", "online": True, "lastSeen": None}
    )
    changed = nz.GroupInfoEvent(
        JID=user("120363", "g.us"),
        Sender=user("15550002", device=2),
        Name=nz.GroupName(Name="Team"),
        Join=[user("15550004"), user("15550005")],
        Demote=[user("15550002")],
    )
    assert mapping.notice(wire(changed)) == EngineNotice(
        "group.changed",
        {
            "group": "120363@g.us",
            "by": "15550002@s.whatsapp.net",
            "name": "Team",
            "joined": ["15550004@s.whatsapp.net", "15550005@s.whatsapp.net"],
            "demoted": ["15550002@s.whatsapp.net"],
        },
    )
    cleared = nz.GroupInfoEvent(JID=user("120363", "g.us"), Topic=nz.GroupTopic(Topic="old", TopicDeleted=True))
    assert mapping.notice(wire(cleared)) == EngineNotice(
        "group.changed", {"group": "120363@g.us", "by": "", "topic": ""}
    )
    joined = nz.JoinedGroup(GroupInfo=nz.GroupInfo(JID=user("120363", "g.us"), GroupName=nz.GroupName(Name="Team")))
    assert mapping.notice(wire(joined)) == EngineNotice("group.joined", {"group": "120363@g.us", "name": "Team"})
    picture = nz.Picture(JID=user("15550002"), Author=user("15550002"), Remove=True)
    assert mapping.notice(wire(picture)) == EngineNotice(
        "picture.changed", {"jid": "15550002@s.whatsapp.net", "by": "15550002@s.whatsapp.net", "removed": True}
    )
    assert mapping.notice(wire(nz.IdentityChange(JID=user("15550002"), Implicit=True))) == EngineNotice(
        "identity.changed", {"jid": "15550002@s.whatsapp.net"}
    )
    assert mapping.notice(wire(nz.OfflineSyncCompleted(Count=12))) == EngineNotice(
        "offline_sync.completed", {"count": 12}
    )
    history = nz.HistorySync()
    history.Data.syncType = history.Data.HistorySyncType.RECENT
    history.Data.chunkOrder, history.Data.progress = 2, 40
    for n in range(3):
        conversation = history.Data.conversations.add(ID=f"1555000{n}@s.whatsapp.net")
        for _ in range(n):
            conversation.messages.add()
    assert mapping.notice(wire(history)) == EngineNotice(
        "history_sync", {"type": "recent", "chunk": 2, "progress": 40, "conversations": 3, "messages": 3}
    )
    # The connection subscribes to each kind it maps, and each reaches the mapping as an engine event, not an end.
    for kind in mapping.NOTICE_EVENTS:
        assert mapping.closing(wire(kind()), now=0) is None
        assert mapping.notice(wire(kind())) is not None


def test_chat_ids_become_jids_and_back() -> None:
    for chat in ("15550002@s.whatsapp.net", "1203630@g.us", "9876@lid"):
        assert mapping.jid(wire(mapping.to_jid(chat))) == chat


def test_who_the_account_is_from_its_device() -> None:
    me = mapping.me_from(wire(nz.Device(JID=user("15550001", device=12), PushName="Shop")))
    assert (me.id, me.phone, me.push_name) == ("15550001@s.whatsapp.net", "+15550001", "Shop")


def test_outgoing_messages_are_built_as_whatsapp_expects() -> None:
    text = mapping.outgoing(OutgoingMessage("3EB0AA", "1@s.whatsapp.net", "hi"), None)
    assert text == e2e.Message(conversation="hi")
    reply = mapping.outgoing(OutgoingMessage("3EB0AB", "1@s.whatsapp.net", "ok", reply_to="Q9"), None)
    assert reply.extendedTextMessage.contextInfo.stanzaID == "Q9"
    upload = nz.UploadResponse(
        url="https://mmg/x",
        DirectPath="/d",
        Handle="",
        MediaKey=b"k",
        FileEncSHA256=b"e",
        FileSHA256=b"s",
        FileLength=3,
    )
    image = OutgoingMessage("3EB0AC", "1@s.whatsapp.net", "look", media=b"abc", mimetype="image/png")
    assert mapping.media_type(image) == "image"
    built = mapping.outgoing(image, upload)
    assert (built.imageMessage.caption, built.imageMessage.mimetype, built.imageMessage.fileLength) == (
        "look",
        "image/png",
        3,
    )
    voice = OutgoingMessage("3EB0AD", "1@s.whatsapp.net", None, media=b"abc", mimetype="audio/ogg", voice=True)
    assert mapping.outgoing(voice, upload).audioMessage.PTT is True
    pdf = OutgoingMessage(
        "3EB0AE", "1@s.whatsapp.net", None, media=b"abc", mimetype="application/pdf", filename="a.pdf"
    )
    assert mapping.outgoing(pdf, upload).documentMessage.fileName == "a.pdf"

"""neonize's events, built from its own protobuf classes and passed through the wire format, mapped to engine events:
one test per kind of event the engine subscribes to."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message as Proto
from neonize.proto import Neonize_pb2 as nz
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from wagate.domain.content import ContactCard, Contacts, Location, Media, Poll, Reaction, Text
from wagate.domain.messages import MessageKind
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


def _received(message: e2e.Message) -> MessageReceived:
    found = mapping.received(wire(nz.Message(Info=info("ABC5"), Message=message)))
    assert found is not None
    return found


def test_places_cards_polls_and_video_notes_are_received_as_their_kind() -> None:
    place = e2e.LocationMessage(degreesLatitude=52.52, degreesLongitude=13.405, name="Office", address="Main St 1")
    assert _received(e2e.Message(locationMessage=place)).content == Location(52.52, 13.405, "Office", "Main St 1")
    live = e2e.LiveLocationMessage(degreesLatitude=-33.9, degreesLongitude=151.2, caption="on my way")
    assert _received(e2e.Message(liveLocationMessage=live)).content == Location(-33.9, 151.2, live=True)
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ann\nEND:VCARD"
    one = _received(e2e.Message(contactMessage=e2e.ContactMessage(displayName="Ann", vcard=vcard)))
    assert (one.content, one.text, one.media) == (Contacts((ContactCard("Ann", vcard),)), None, None)
    cards = [e2e.ContactMessage(displayName=n, vcard=vcard.replace("Ann", n)) for n in ("Ann", "Bo")]
    several = _received(e2e.Message(contactsArrayMessage=e2e.ContactsArrayMessage(displayName="2", contacts=cards)))
    assert isinstance(several.content, Contacts)
    assert [c.name for c in several.content.cards] == ["Ann", "Bo"]
    options = [e2e.PollCreationMessage.Option(optionName=o) for o in ("yes", "no")]
    single = e2e.PollCreationMessage(name="Lunch?", options=options, selectableOptionsCount=1)
    assert _received(e2e.Message(pollCreationMessageV3=single)).content == Poll("Lunch?", ("yes", "no"))
    # wrapped as view-once, as WhatsApp sends some: the poll inside
    any_number = e2e.PollCreationMessage(name="Days", options=options, selectableOptionsCount=0)
    wrapped = e2e.Message(viewOnceMessage=e2e.FutureProofMessage(message=e2e.Message(pollCreationMessage=any_number)))
    assert _received(wrapped).content == Poll("Days", ("yes", "no"), multiple=True)
    note = e2e.VideoMessage(mimetype="video/mp4", fileLength=5, caption="")
    received_note = _received(e2e.Message(ptvMessage=note))
    assert received_note.media is not None
    assert (received_note.media["type"], received_note.media["mimetype"]) == ("ptv", "video/mp4")


def test_messages_sent_from_the_phone_are_received_as_the_account_s_own() -> None:
    """whatsmeow hands a companion what the phone (or another device of the account) sends, marked IsFromMe: the
    chat is the recipient, the sender the account itself."""
    own = info("M1", sender="15550001", from_me=True)
    own.MessageSource.Chat.CopyFrom(user("15550002"))
    received = mapping.received(wire(nz.Message(Info=own, Message=e2e.Message(conversation="sent from my phone"))))
    assert received is not None
    assert (received.from_me, received.chat, received.sender) == (
        True,
        "15550002@s.whatsapp.net",
        "15550001@s.whatsapp.net",
    )
    assert received.text == "sent from my phone"
    assert _received(e2e.Message(conversation="x")).from_me is False


def test_protocol_messages_are_not_stored_as_received() -> None:
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


UPLOAD = nz.UploadResponse(
    url="https://mmg/x", DirectPath="/d", Handle="", MediaKey=b"k", FileEncSHA256=b"e", FileSHA256=b"s", FileLength=3
)


def _out(content: Any, reply_to: str | None = None) -> e2e.Message:
    message = OutgoingMessage("3EB0AA", "1@s.whatsapp.net", content, reply_to=reply_to)
    upload = UPLOAD if isinstance(content, Media) else None
    # Through the wire and back: what whatsmeow is handed is a valid message, whole.
    return e2e.Message.FromString(mapping.outgoing(message, upload, b"s" * 32).SerializeToString())


def test_outgoing_text_and_replies_are_built_as_whatsapp_expects() -> None:
    assert _out(Text("hi")) == e2e.Message(conversation="hi")
    reply = _out(Text("ok"), reply_to="Q9")
    assert (reply.extendedTextMessage.text, reply.extendedTextMessage.contextInfo.stanzaID) == ("ok", "Q9")


def test_outgoing_files_travel_as_their_kind() -> None:
    image = _out(Media(MessageKind.IMAGE, b"abc", "image/png", None, "look"))
    assert (image.imageMessage.caption, image.imageMessage.mimetype, image.imageMessage.fileLength) == (
        "look",
        "image/png",
        3,
    )
    assert (image.imageMessage.directPath, image.imageMessage.mediaKey) == ("/d", b"k")
    assert _out(Media(MessageKind.VOICE, b"abc", "audio/ogg; codecs=opus")).audioMessage.PTT is True
    pdf = _out(Media(MessageKind.FILE, b"abc", "application/pdf", "a.pdf"))
    assert (pdf.documentMessage.fileName, pdf.documentMessage.title) == ("a.pdf", "a.pdf")
    # sendFile sends a document whatever the file is: a picture sent as a file keeps its quality.
    assert _out(Media(MessageKind.FILE, b"abc", "image/png", "p.png")).HasField("documentMessage")
    video = _out(Media(MessageKind.VIDEO, b"abc", "video/mp4", "v.mp4", "watch"), reply_to="Q1")
    assert (video.videoMessage.caption, video.videoMessage.mimetype) == ("watch", "video/mp4")
    assert video.videoMessage.contextInfo.stanzaID == "Q1"
    assert not video.HasField("ptvMessage")
    note = _out(Media(MessageKind.VIDEO, b"abc", "video/mp4", as_note=True))
    assert note.HasField("ptvMessage")  # a round video note
    assert not note.HasField("videoMessage")
    assert note.ptvMessage.fileSHA256 == b"s"
    assert [mapping.media_type(Media(k, b"", m)) for k, m in [(MessageKind.VIDEO, "video/mp4")]] == ["video"]


def test_a_reaction_is_keyed_to_its_message_as_whatsmeow_keys_it() -> None:
    def react(chat: str, reaction: Reaction) -> e2e.ReactionMessage:
        built = mapping.outgoing(OutgoingMessage("3EB0AB", chat, reaction), None, now=1_700_000_000.5)
        return e2e.Message.FromString(built.SerializeToString()).reactionMessage

    theirs = react("1203@g.us", Reaction("AAAA", "👍", from_me=False, participant="15550002@s.whatsapp.net"))
    assert (theirs.key.remoteJID, theirs.key.ID, theirs.key.fromMe) == ("1203@g.us", "AAAA", False)
    assert (theirs.key.participant, theirs.text, theirs.senderTimestampMS) == (
        "15550002@s.whatsapp.net",
        "👍",
        1_700_000_000_500,
    )
    mine = react("15550002@s.whatsapp.net", Reaction("BBBB", "", from_me=True))
    assert (mine.key.fromMe, mine.text) == (True, "")  # an empty reaction takes it away
    assert not mine.key.HasField("participant")
    direct = react(
        "15550002@s.whatsapp.net", Reaction("CCCC", "❤", from_me=False, participant="15550002@s.whatsapp.net")
    )
    assert not direct.key.HasField("participant")  # outside a group the chat says who


def test_outgoing_places_cards_and_polls_are_built_as_whatsapp_expects() -> None:
    place = _out(Location(52.52, 13.405, "Office", None), reply_to="Q2").locationMessage
    assert (place.degreesLatitude, place.degreesLongitude, place.name) == (52.52, 13.405, "Office")
    assert not place.HasField("address")
    assert place.contextInfo.stanzaID == "Q2"
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ann\nEND:VCARD"
    one = _out(Contacts((ContactCard("Ann", vcard),)))
    assert (one.contactMessage.displayName, one.contactMessage.vcard) == ("Ann", vcard)
    two = _out(Contacts((ContactCard("Ann", vcard), ContactCard("Bo", vcard.replace("Ann", "Bo")))))
    assert [c.displayName for c in two.contactsArrayMessage.contacts] == ["Ann", "Bo"]
    assert two.contactsArrayMessage.displayName == "2 contacts"
    single = _out(Poll("Lunch?", ("yes", "no")))
    # as whatsmeow builds polls: one answer -> V3 with a count of 1; several -> the first form with 0 (any number)
    assert [o.optionName for o in single.pollCreationMessageV3.options] == ["yes", "no"]
    assert single.pollCreationMessageV3.selectableOptionsCount == 1
    assert single.messageContextInfo.messageSecret == b"s" * 32  # the votes' key is made from it
    several = _out(Poll("Days", ("mon", "tue", "wed"), multiple=True))
    assert (several.pollCreationMessage.name, several.pollCreationMessage.selectableOptionsCount) == ("Days", 0)
    assert not several.HasField("pollCreationMessageV3")

"""neonize's events (its protobuf messages) translated into the engine events of the contract.

Pure functions, no I/O: the connection feeds them each event neonize reports and acts on what comes back. An event
that means nothing to the gateway maps to ``None``. Message ids in receipts are WhatsApp's; the connection turns them
into the gateway's own ids before reporting them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neonize.aioze.client import ProxySettings
from neonize.proto import Neonize_pb2 as nz
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from wagate.domain.content import ContactCard, Contacts, Location, Media, Poll, Reaction
from wagate.domain.messages import MessageKind
from wagate.domain.sessions import Proxy
from wagate.engines.base import (
    DecryptFailed,
    Disconnected,
    EngineEvent,
    EngineNotice,
    LoggedOut,
    Me,
    MessageReceived,
    OutgoingMessage,
    Replaced,
    TemporarilyBanned,
)

__all__ = [
    "NOTICE_EVENTS",
    "RECEIPT_STATUS",
    "Receipts",
    "closing",
    "connect_failure",
    "device_props",
    "jid",
    "logged_out",
    "me_from",
    "media_reference",
    "media_type",
    "message_text",
    "notice",
    "outgoing",
    "proxy_settings",
    "receipts",
    "received",
    "shared_content",
    "temporary_ban",
    "to_jid",
    "undecryptable",
    "unwrap",
]

# ConnectFailureReason values that end the link for good (the phone removed this device, or WhatsApp did).
_LOGOUT_REASONS = {
    nz.ConnectFailureReason.LOGGED_OUT: "logged_out",
    nz.ConnectFailureReason.MAIN_DEVICE_GONE: "main_device_gone",
    nz.ConnectFailureReason.UNKNOWN_LOGOUT: "unknown_logout",
}

# Receipt types that move one of our sent messages forward; the others (a retry request, our own devices reading
# messages we received...) are not about delivery.
RECEIPT_STATUS = {
    nz.Receipt.ReceiptType.DELIVERED: "delivered",
    nz.Receipt.ReceiptType.READ: "read",
    nz.Receipt.ReceiptType.PLAYED: "read",
}

# Media kinds in a WhatsApp message, by the field that carries them.
_MEDIA_FIELDS = ("imageMessage", "videoMessage", "ptvMessage", "audioMessage", "documentMessage", "stickerMessage")
_POLL_FIELDS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3")


def jid(value: nz.JID) -> str:
    """``user@server`` (the device part dropped): the form chat ids and senders take in the gateway."""
    if not value.User and not value.Server:
        return ""
    return f"{value.User}@{value.Server}" if value.User else value.Server


def to_jid(chat: str) -> nz.JID:
    """A gateway chat id (``user@server``) as neonize's JID."""
    user, _, server = chat.partition("@")
    return nz.JID(User=user, Server=server or "s.whatsapp.net", RawAgent=0, Device=0, Integrator=0, IsEmpty=False)


def me_from(device: nz.Device) -> Me:
    """Who the account is, from the device neonize reports once connected or paired."""
    own = jid(device.JID)
    return Me(id=own, phone="+" + device.JID.User if device.JID.User else "", push_name=device.PushName or None)


def message_text(message: e2e.Message) -> str | None:
    """The text of a message, or the caption of its media."""
    if message.conversation:
        return str(message.conversation)
    if message.HasField("extendedTextMessage"):
        return str(message.extendedTextMessage.text)
    for name in _MEDIA_FIELDS:
        if message.HasField(name):
            caption = getattr(getattr(message, name), "caption", "")
            return str(caption) if caption else None
    return None


def media_reference(message: e2e.Message) -> dict[str, Any] | None:
    """What a received media is (type, size, name), never the bytes nor the keys to fetch them."""
    for name in _MEDIA_FIELDS:
        if message.HasField(name):
            media = getattr(message, name)
            reference: dict[str, Any] = {
                "type": name.removesuffix("Message"),
                "mimetype": media.mimetype or "application/octet-stream",
                "size": int(media.fileLength),
                "sha256": media.fileSHA256.hex() if media.fileSHA256 else None,
            }
            if name == "documentMessage" and media.fileName:
                reference["filename"] = media.fileName
            if name == "audioMessage" and media.PTT:
                reference["voice"] = True
            return reference
    return None


def unwrap(message: e2e.Message) -> e2e.Message:
    """The content of a message sent as ephemeral, view-once or document-with-caption."""
    for wrapper in ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "documentWithCaptionMessage"):
        if message.HasField(wrapper):
            return unwrap(getattr(message, wrapper).message)
    return message


def received(event: nz.Message) -> MessageReceived | None:
    """A message someone sent to this account, or the account sent from its phone or another of its devices
    (``from_me``); None for what is not a message to store (protocol messages such as key distribution, reactions and
    revocations are reported as notices)."""
    info = event.Info
    source = info.MessageSource
    content = unwrap(event.Message)
    text = message_text(content)
    media = media_reference(content)
    shared = shared_content(content)
    if text is None and media is None and shared is None:
        return None
    extra: dict[str, Any] = {}
    if event.IsEdit:
        extra["edit"] = True
    if content.HasField("extendedTextMessage") and content.extendedTextMessage.contextInfo.stanzaID:
        extra["replyTo"] = content.extendedTextMessage.contextInfo.stanzaID
    return MessageReceived(
        message_id=info.ID,
        chat=jid(source.Chat),
        sender=jid(source.Sender),
        text=text,
        timestamp=float(info.Timestamp),
        extra=extra,
        push_name=info.Pushname or None,
        media=media,
        content=shared,
        from_me=bool(source.IsFromMe),
    )


def shared_content(message: e2e.Message) -> Location | Contacts | Poll | None:
    """A place (or a live location), contact cards, or a poll, as a message carries them."""
    if message.HasField("locationMessage") or message.HasField("liveLocationMessage"):
        live = message.HasField("liveLocationMessage")
        place = message.liveLocationMessage if live else message.locationMessage
        return Location(
            float(place.degreesLatitude),
            float(place.degreesLongitude),
            getattr(place, "name", "") or None,
            getattr(place, "address", "") or None,
            live=live,
        )
    if message.HasField("contactMessage"):
        card = message.contactMessage
        return Contacts((ContactCard(str(card.displayName), str(card.vcard)),))
    if message.HasField("contactsArrayMessage"):
        cards = message.contactsArrayMessage.contacts
        return Contacts(tuple(ContactCard(str(c.displayName), str(c.vcard)) for c in cards))
    for name in _POLL_FIELDS:
        if message.HasField(name):
            poll = getattr(message, name)
            options = tuple(str(option.optionName) for option in poll.options)
            return Poll(str(poll.name), options, multiple=int(poll.selectableOptionsCount) != 1)
    return None


@dataclass(frozen=True, slots=True)
class Receipts:
    """Receipts for messages this account sent: WhatsApp's ids, one status."""

    whatsapp_ids: tuple[str, ...]
    status: str
    timestamp: float


def receipts(event: nz.Receipt) -> Receipts | None:
    status = RECEIPT_STATUS.get(event.Type)
    if status is None or event.MessageSource.IsFromMe:
        return None
    return Receipts(tuple(event.MessageIDs), status, float(event.Timestamp))


def undecryptable(event: nz.UndecryptableMessage) -> DecryptFailed:
    """A message that failed to decrypt: whatsmeow's word for the "Bad MAC" of other clients."""
    source = event.Info.MessageSource
    return DecryptFailed(contact=jid(source.Sender) or jid(source.Chat), message_id=event.Info.ID)


def connect_failure(event: nz.ConnectFailure) -> EngineEvent:
    reason = event.Reason
    if reason in _LOGOUT_REASONS:
        return LoggedOut(_LOGOUT_REASONS[reason])
    if reason == nz.ConnectFailureReason.TEMP_BANNED:
        return TemporarilyBanned(until=None)
    if reason == nz.ConnectFailureReason.CLIENT_OUTDATED:
        return Disconnected("WhatsApp refuses this client version: upgrade neonize", retryable=False)
    name = nz.ConnectFailureReason.Name(reason) if reason in nz.ConnectFailureReason.values() else str(reason)
    detail = f": {event.Message}" if event.Message else ""
    return Disconnected(f"WhatsApp refused the connection ({name.lower()}{detail})", retryable=True)


def logged_out(event: nz.LoggedOut) -> LoggedOut:
    return LoggedOut(_LOGOUT_REASONS.get(event.Reason, "logged_out"))


def temporary_ban(event: nz.TemporaryBan, now: float) -> TemporarilyBanned:
    return TemporarilyBanned(until=now + float(event.Expire) if event.Expire > 0 else None)


def closing(event: Any, now: float) -> EngineEvent | None:
    """The event that ends the connection, for the neonize events that do; None for the others."""
    if isinstance(event, nz.StreamReplaced):
        return Replaced()
    if isinstance(event, nz.LoggedOut):
        return logged_out(event)
    if isinstance(event, nz.ConnectFailure):
        return connect_failure(event)
    if isinstance(event, nz.TemporaryBan):
        return temporary_ban(event, now)
    if isinstance(event, nz.ClientOutdated):
        return Disconnected("WhatsApp refuses this client version: upgrade neonize", retryable=False)
    return None


def notice(event: Any) -> EngineNotice | None:
    """Events a tenant may want to hear of that change nothing in the gateway."""
    if isinstance(event, nz.KeepAliveTimeout):
        return EngineNotice("keepalive_timeout", {"errors": int(event.ErrorCount)})
    if isinstance(event, nz.KeepAliveRestored):
        return EngineNotice("keepalive_restored", {})
    if isinstance(event, nz.StreamError):
        return EngineNotice("stream_error", {"code": event.Code})
    if isinstance(event, nz.PairStatus) and event.Status == nz.PairStatus.PStatus.ERROR:
        return EngineNotice("pair_error", {"error": event.Error})
    return _chat_notice(event)


# What people do around the chats: calls, typing, presence, groups and profile changes, as WAHA's users know them;
# the connection subscribes to these as well, each reported as an ``engine.event``.
NOTICE_EVENTS: tuple[type[Any], ...] = (
    nz.CallOffer,
    nz.CallTerminate,
    nz.ChatPresence,
    nz.Presence,
    nz.GroupInfoEvent,
    nz.JoinedGroup,
    nz.Picture,
    nz.IdentityChange,
    nz.OfflineSyncCompleted,
    nz.HistorySync,
)
_CHAT_STATES = {nz.ChatPresence.ChatPresence.COMPOSING: "composing", nz.ChatPresence.ChatPresence.PAUSED: "paused"}
_CHAT_MEDIA = {nz.ChatPresence.ChatPresenceMedia.TEXT: "text", nz.ChatPresence.ChatPresenceMedia.AUDIO: "audio"}


def _seconds(value: int) -> float:
    """A time as whatsmeow hands it over (seconds, or milliseconds for calls) in seconds."""
    return value / 1000 if value > 10**11 else float(value)


def _chat_notice(event: Any) -> EngineNotice | None:
    if isinstance(event, nz.CallOffer):
        meta = event.basicCallMeta
        return EngineNotice(
            "call.received",
            {"id": meta.callID, "from": jid(getattr(meta, "from")), "timestamp": _seconds(meta.timestamp)},
        )
    if isinstance(event, nz.CallTerminate):
        meta = event.basicCallMeta
        return EngineNotice(
            "call.ended", {"id": meta.callID, "from": jid(getattr(meta, "from")), "reason": event.reason}
        )
    if isinstance(event, nz.ChatPresence):
        source = event.MessageSource
        return EngineNotice(
            "presence.chat",
            {
                "chat": jid(source.Chat),
                "from": jid(source.Sender),
                "state": _CHAT_STATES.get(event.State, "unknown"),
                "media": _CHAT_MEDIA.get(event.Media, "text"),
            },
        )
    if isinstance(event, nz.Presence):
        last_seen = _seconds(event.LastSeen) if event.LastSeen > 0 else None
        return EngineNotice(
            "presence", {"from": jid(event.From), "online": not event.Unavailable, "lastSeen": last_seen}
        )
    if isinstance(event, nz.GroupInfoEvent):
        data: dict[str, Any] = {"group": jid(event.JID), "by": jid(event.Sender)}
        if event.HasField("Name"):
            data["name"] = event.Name.Name
        if event.HasField("Topic"):
            data["topic"] = "" if event.Topic.TopicDeleted else event.Topic.Topic
        for field_name, key in (("Join", "joined"), ("Leave", "left"), ("Promote", "promoted"), ("Demote", "demoted")):
            members = [jid(member) for member in getattr(event, field_name)]
            if members:
                data[key] = members
        return EngineNotice("group.changed", data)
    if isinstance(event, nz.JoinedGroup):
        return EngineNotice("group.joined", {"group": jid(event.GroupInfo.JID), "name": event.GroupInfo.GroupName.Name})
    if isinstance(event, nz.Picture):
        return EngineNotice(
            "picture.changed", {"jid": jid(event.JID), "by": jid(event.Author), "removed": event.Remove}
        )
    if isinstance(event, nz.IdentityChange):
        # A contact's security code changed (a new phone, WhatsApp reinstalled): their next messages use new keys.
        return EngineNotice("identity.changed", {"jid": jid(event.JID)})
    if isinstance(event, nz.OfflineSyncCompleted):
        return EngineNotice("offline_sync.completed", {"count": int(event.Count)})
    if isinstance(event, nz.HistorySync):
        # The phone's history, in chunks after pairing: how far it is, not its content (which stays on the phone).
        history = event.Data
        return EngineNotice(
            "history_sync",
            {
                "type": history.HistorySyncType.Name(history.syncType).lower(),
                "chunk": int(history.chunkOrder),
                "progress": int(history.progress),
                "conversations": len(history.conversations),
                "messages": sum(len(conversation.messages) for conversation in history.conversations),
            },
        )
    return None


def media_type(media: Media) -> str:
    """Which kind of WhatsApp media a file travels as (how it is encrypted and uploaded): image, video, audio or
    document."""
    if media.kind is MessageKind.VOICE:
        return "audio"
    if media.kind is MessageKind.IMAGE and media.mimetype != "image/svg+xml":
        return "image"
    if media.kind is MessageKind.VIDEO:
        return "video"
    return "document"


def outgoing(
    message: OutgoingMessage, upload: nz.UploadResponse | None, secret: bytes = b"", now: float = 0.0
) -> e2e.Message:
    """The WhatsApp message for ``message``; ``upload`` is where its media went (None for any other kind);
    ``secret``: 32 random bytes for a poll (its votes are encrypted with a key made from them); ``now`` the time
    a reaction says it was made."""
    context = e2e.ContextInfo(stanzaID=message.reply_to) if message.reply_to else None
    content = message.content
    if isinstance(content, Media):
        if upload is None:
            raise ValueError("a media message without its upload")
        return _media_message(content, upload, context)
    if isinstance(content, Location):
        place = e2e.LocationMessage(
            degreesLatitude=content.latitude,
            degreesLongitude=content.longitude,
            name=content.name,
            address=content.address,
            contextInfo=context,
        )
        return e2e.Message(locationMessage=place)
    if isinstance(content, Contacts):
        if len(content.cards) == 1:
            (card,) = content.cards
            return e2e.Message(
                contactMessage=e2e.ContactMessage(displayName=card.name, vcard=card.vcard, contextInfo=context)
            )
        cards = [e2e.ContactMessage(displayName=card.name, vcard=card.vcard) for card in content.cards]
        shown = f"{len(cards)} contacts"
        return e2e.Message(
            contactsArrayMessage=e2e.ContactsArrayMessage(displayName=shown, contacts=cards, contextInfo=context)
        )
    if isinstance(content, Poll):
        options = [e2e.PollCreationMessage.Option(optionName=option) for option in content.options]
        count = 0 if content.multiple else 1  # whatsmeow's rule: 0 lets a voter pick any number
        poll = e2e.PollCreationMessage(
            name=content.name, options=options, selectableOptionsCount=count, contextInfo=context
        )
        info = e2e.MessageContextInfo(messageSecret=secret)
        if content.multiple:
            return e2e.Message(pollCreationMessage=poll, messageContextInfo=info)
        return e2e.Message(pollCreationMessageV3=poll, messageContextInfo=info)
    if isinstance(content, Reaction):
        # Keyed as whatsmeow keys a reaction: the chat, the message's id, whether the account sent it, and in a
        # group the participant who did.
        participant = content.participant if message.chat.endswith("@g.us") and not content.from_me else None
        key = MessageKey(remoteJID=message.chat, fromMe=content.from_me, ID=content.message_id, participant=participant)
        reaction = e2e.ReactionMessage(key=key, text=content.emoji, senderTimestampMS=int(now * 1000))
        return e2e.Message(reactionMessage=reaction)
    if context is None:
        return e2e.Message(conversation=content.text)
    return e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text=content.text, contextInfo=context))


def _media_message(media: Media, upload: nz.UploadResponse, context: e2e.ContextInfo | None) -> e2e.Message:
    common: dict[str, Any] = {
        "URL": upload.url,
        "directPath": upload.DirectPath,
        "mediaKey": upload.MediaKey,
        "fileEncSHA256": upload.FileEncSHA256,
        "fileSHA256": upload.FileSHA256,
        "fileLength": upload.FileLength,
        "mimetype": media.mimetype,
    }
    if context is not None:
        common["contextInfo"] = context
    kind = media_type(media)
    if kind == "image":
        return e2e.Message(imageMessage=e2e.ImageMessage(caption=media.caption or None, **common))
    if kind == "video":
        video = e2e.VideoMessage(caption=media.caption or None, **common)
        # A video note travels as WhatsApp's "ptv" (a round video, played inline), with no caption.
        return e2e.Message(ptvMessage=video) if media.as_note else e2e.Message(videoMessage=video)
    if kind == "audio":
        return e2e.Message(audioMessage=e2e.AudioMessage(PTT=media.kind is MessageKind.VOICE, **common))
    document = e2e.DocumentMessage(
        caption=media.caption or None, fileName=media.filename or "file", title=media.filename or None, **common
    )
    return e2e.Message(documentMessage=document)


def device_props(config: dict[str, Any]) -> DeviceProps | None:
    """How the phone lists the linked device, from WAHA's ``config.client``: ``deviceName`` names it,
    ``browserName`` (Chrome, Firefox, Safari, Edge, Opera...) picks its icon. None: neonize's own."""
    client = config.get("client") or {}
    name, browser = client.get("deviceName"), client.get("browserName")
    if not name and not browser:
        return None
    platform = DeviceProps.SAFARI  # neonize's own default
    if browser and str(browser).upper() in DeviceProps.PlatformType.keys():  # noqa: SIM118 - an enum wrapper, not a dict
        platform = DeviceProps.PlatformType.Value(str(browser).upper())
    return DeviceProps(os=str(name or browser), platformType=platform)


def proxy_settings(proxy: Proxy | None) -> ProxySettings | None:
    """The session's proxy for every connection of whatsmeow (the socket, media up- and downloads)."""
    return None if proxy is None else ProxySettings(proxy_address=proxy.url())

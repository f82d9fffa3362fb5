"""What crosses between the gateway and an engine host: msgpack, with the engine contract's records and errors as
extension types, decoded from an allowlist only.

msgpack rather than pickle: the host runs native code that parses what WhatsApp sends, so what it writes back is
treated as data. Unpickling lets the writer run code in the reader, and the reader is the gateway, which holds the
key-encryption keys; decoding msgpack builds only the records and errors named below, from their fields. It carries
bytes as they are (media, whatsmeow's snapshots), without the base64 of JSON.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import msgpack

from wagate.domain.content import ContactCard, Contacts, Location, Media, Poll, Reaction, Text
from wagate.domain.messages import Contact, Group
from wagate.engines.base import (
    Connected,
    ContactStateDamaged,
    ContactsUpdated,
    DecryptFailed,
    DeviceStateDamaged,
    Disconnected,
    EngineConnectError,
    EngineNotice,
    EngineUnavailable,
    GroupsUpdated,
    LoggedOut,
    Me,
    MessageAck,
    MessageReceived,
    OutgoingMessage,
    Paired,
    PairingCode,
    QrCode,
    Reconnecting,
    Replaced,
    SendRejected,
    SentMessage,
    TemporarilyBanned,
)
from wagate.errors import (
    ConfigError,
    CryptoError,
    DamagedRecord,
    LeaseLost,
    StorageFull,
    StoreError,
    StoreUnavailable,
    WagateError,
)

__all__ = ["MAX_FRAME", "RemoteError", "decode_error", "pack", "unpack", "unpacker"]

MAX_FRAME = 512 * 1024 * 1024  # one message at most: a media file or a whatsmeow snapshot, with room to spare

_RECORD = 1
_ERROR = 2
_MESSAGE = 2000  # characters of an error's message that cross

_RECORDS: tuple[type[Any], ...] = (
    QrCode,
    PairingCode,
    Paired,
    Connected,
    Disconnected,
    Reconnecting,
    LoggedOut,
    Replaced,
    TemporarilyBanned,
    DecryptFailed,
    ContactStateDamaged,
    DeviceStateDamaged,
    MessageReceived,
    MessageAck,
    ContactsUpdated,
    GroupsUpdated,
    EngineNotice,
    Me,
    Contact,
    Group,
    OutgoingMessage,
    Text,
    Media,
    Location,
    ContactCard,
    Contacts,
    Poll,
    Reaction,
    SentMessage,
)
# Errors that keep their class across the hop: the engines and the supervisor tell them apart (``LeaseLost`` ends a
# session's run, ``SendRejected`` fails one message...). Any other arrives as a ``RemoteError``.
_ERRORS: tuple[type[Exception], ...] = (
    EngineUnavailable,
    SendRejected,
    LeaseLost,
    StorageFull,
    StoreUnavailable,
    StoreError,
    CryptoError,
    ConfigError,
)


class RemoteError(WagateError):
    """An error of a kind that does not cross the hop as itself, raised on the other side; the message names it."""


def _tuple_fields(cls: type[Any]) -> frozenset[str]:
    hints = typing.get_type_hints(cls)
    return frozenset(f.name for f in dataclasses.fields(cls) if typing.get_origin(hints[f.name]) is tuple)


_BY_NAME: dict[str, tuple[type[Any], tuple[str, ...], frozenset[str]]] = {
    cls.__name__: (cls, tuple(f.name for f in dataclasses.fields(cls)), _tuple_fields(cls)) for cls in _RECORDS
}
_ERRORS_BY_NAME = {cls.__name__: cls for cls in _ERRORS}


def _default(value: Any) -> Any:
    name = type(value).__name__
    known = _BY_NAME.get(name)
    if known is not None and known[0] is type(value):
        fields = [getattr(value, field) for field in known[1]]
        return msgpack.ExtType(_RECORD, pack([name, fields]))
    if isinstance(value, BaseException):
        return msgpack.ExtType(_ERROR, pack(_error_fields(value)))
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"an engine host cannot carry a {name}")


def _error_fields(error: BaseException) -> list[Any]:
    if isinstance(error, EngineConnectError):
        return ["EngineConnectError", error.reason, error.retryable]
    if isinstance(error, DamagedRecord):  # the engine deals with the damaged records and goes on with the readable
        return ["DamagedRecord", [list(record) for record in error.records], error.readable]
    for cls in _ERRORS:
        if type(error) is cls:
            return [cls.__name__, str(error)[:_MESSAGE], None]
    return ["RemoteError", f"{type(error).__name__}: {error}"[:_MESSAGE], None]


def _ext(code: int, data: bytes) -> Any:
    if code == _RECORD:
        name, values = unpack(data)
        cls, names, tuples = _BY_NAME[name]
        if len(values) != len(names):
            raise ValueError(f"a {name} with {len(values)} fields")
        fields = {n: _tuple(v) if n in tuples else v for n, v in zip(names, values, strict=True)}
        return cls(**fields)
    if code == _ERROR:
        return decode_error(unpack(data))
    raise ValueError(f"unknown extension type {code}")


def _tuple(value: list[Any]) -> tuple[Any, ...]:
    """A tuple field as it was: its own items that were tuples (pairs of names) are tuples again."""
    return tuple(_tuple(item) if isinstance(item, list) else item for item in value)


def decode_error(fields: list[Any]) -> Exception:
    kind, message, extra = fields
    if kind == "EngineConnectError":
        return EngineConnectError(str(message), retryable=bool(extra))
    if kind == "DamagedRecord":
        return DamagedRecord([(str(ns), str(key)) for ns, key in message], {str(k): bytes(v) for k, v in extra.items()})
    cls = _ERRORS_BY_NAME.get(kind, RemoteError)
    return cls(str(message))


def pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, default=_default, use_bin_type=True)
    return packed


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext, raw=False, strict_map_key=False, max_bin_len=MAX_FRAME)


def unpacker() -> msgpack.Unpacker:
    """A stream decoder: ``feed`` it bytes as they come, iterate it for each whole message."""
    return msgpack.Unpacker(ext_hook=_ext, raw=False, strict_map_key=False, max_buffer_size=MAX_FRAME)

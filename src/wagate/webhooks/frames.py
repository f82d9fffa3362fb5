"""What crosses the pipes between the gateway and its webhook sender child.

Both directions carry msgpack arrays, one after another on the pipe (msgpack frames itself, so the stream needs no
length prefix), the first item naming the kind:

- to the child, ``["E", index, url, secrets, headers, hmac]``: an endpoint (the secrets it signs with, its own
  headers as ``[name, value]`` pairs, its WAHA HMAC key or nil) under an index that runs refer to;
  ``["R", token, index, now, [[event_id, body], ...]]``: a run, with the dispatcher's time;
- from the child, ``["A", token, [[outcome, status, retry_after, error], ...]]``: the run's answer, per delivery
  (outcome 0 not attempted, 1 delivered, 2 failed, 3 refused by the SSRF guard; status and Retry-After in seconds
  or nil); ``["H"]`` every second while it holds runs: a child silent for the request timeout and ten seconds more
  is taken as stuck and replaced.

The child is started with ``--protocol`` naming this layout (:data:`PROTOCOL`): a child of another version of the
package (one installed over the running gateway) refuses to start rather than misread the frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from wagate.webhooks.client import Attempt

__all__ = [
    "BROKEN",
    "HEARTBEAT",
    "MAX_FRAME",
    "MAX_RUN",
    "PROTOCOL",
    "FrameReader",
    "TurnWriter",
    "decode_answer",
    "encode_answer",
    "frame",
]

PROTOCOL = 5  # the frames' layout; 3: the refused outcome; 4: msgpack arrays; 5: the endpoint's HMAC key
MAX_FRAME = 256 * 1024 * 1024
MAX_RUN = 256
_NOT_ATTEMPTED, _DELIVERED, _FAILED, _REFUSED = 0, 1, 2, 3
# While it holds runs the child says it is alive every HEARTBEAT seconds.
HEARTBEAT = 1.0
# What reading a frame that breaks the layout raises (UnicodeDecodeError is a ValueError; a frame over MAX_FRAME
# is msgpack's BufferFull).
BROKEN = (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException)


def frame(*items: Any) -> bytes:
    return msgpack.packb(items, use_bin_type=True)  # type: ignore[no-any-return]


class FrameReader:
    """Splits a byte stream into msgpack arrays and hands each to ``on_frame``."""

    def __init__(self, on_frame: Callable[[list[Any]], None]) -> None:
        self._unpacker = msgpack.Unpacker(max_buffer_size=MAX_FRAME, raw=False)
        self._on_frame = on_frame

    def feed(self, data: bytes) -> None:
        self._unpacker.feed(data)
        for message in self._unpacker:
            if not isinstance(message, list) or not message:
                raise ValueError("a frame that is not an array")
            self._on_frame(message)


class TurnWriter:
    """Frames written during one turn of the loop, sent to ``target()`` in one write once the turn is over."""

    def __init__(self, target: Callable[[], asyncio.WriteTransport | None]) -> None:
        self._target = target
        self._out: list[bytes] = []
        self._scheduled = False

    def send(self, data: bytes) -> None:
        self._out.append(data)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        out, self._out = self._out, []
        transport = self._target()
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))

    def clear(self) -> None:
        self._out.clear()


def encode_answer(token: int, attempts: Sequence[Attempt | None]) -> bytes:
    outcomes: list[tuple[int, int | None, float | None, str]] = []
    for attempt in attempts:
        if attempt is None:
            outcomes.append((_NOT_ATTEMPTED, None, None, ""))
            continue
        outcome = _DELIVERED if attempt.ok else _REFUSED if attempt.refused else _FAILED
        outcomes.append((outcome, attempt.status, attempt.retry_after, attempt.error[:4000]))
    return frame("A", token, outcomes)


def decode_answer(message: list[Any]) -> tuple[int, list[Attempt | None]]:
    _, token, outcomes = message
    attempts: list[Attempt | None] = []
    for outcome, status, retry_after, error in outcomes:
        if outcome == _NOT_ATTEMPTED:
            attempts.append(None)
        else:
            attempts.append(
                Attempt(outcome == _DELIVERED, status or None, str(error), retry_after, outcome == _REFUSED)
            )
    return int(token), attempts

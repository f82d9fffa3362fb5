"""What both SDK flows share: their settings, the steps they report, a webhook handler written as a WAHA user writes
one, the simulator's phone, and the media they send.

A flow runs in a process of its own whose ``PYTHONPATH`` starts with one SDK's install directory, so ``waha`` (and
the httpx and pydantic that SDK brought) are that SDK's. This module imports neither SDK: only the standard library,
httpx (both SDKs bring it) and, to read a QR code from its picture as a phone's camera would, zxing-cpp and Pillow.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx

__all__ = [
    "FILE",
    "IMAGE",
    "VOICE",
    "Flow",
    "Hooks",
    "Phone",
    "decode_qr",
    "is_status",
    "step",
    "until",
]

T = TypeVar("T")

# A 1x1 PNG, a one-page PDF's first bytes and an Ogg page header: small files of the kinds each send names.
IMAGE = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e5273cd90000000049454e44ae426082"
    )
).decode()
FILE = base64.b64encode(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n").decode()
VOICE = base64.b64encode(b"OggS\x00\x02" + bytes(58)).decode()
VIDEO = base64.b64encode(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(40)).decode()


@dataclass(frozen=True)
class Flow:
    """What the test hands a flow (as JSON in ``argv[1]``): where the gateway and the simulator listen, the tenant's
    key, the session's name, the phone that links it and the contact that writes to it."""

    base_url: str
    api_key: str
    sim_url: str
    session: str
    phone: str
    peer: str

    @classmethod
    def from_argv(cls) -> Flow:
        return cls(**json.loads(sys.argv[1]))

    @property
    def me_id(self) -> str:
        """The linked account's id as WAHA writes it."""
        return f"{self.phone.lstrip('+')}@c.us"

    @property
    def peer_id(self) -> str:
        return f"{self.peer.lstrip('+')}@c.us"


def _report(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


@contextmanager
def step(name: str) -> Iterator[None]:
    """One step of the flow, reported on stdout as a JSON line (``ok``, or the error and its traceback); a failed
    step ends the flow, as every later one builds on it."""
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        trace = traceback.format_exc()
        answer = getattr(exc, "response", None)  # httpx's HTTPStatusError: the gateway's answer says what disagreed
        if isinstance(answer, httpx.Response):
            trace += f"answer: {answer.status_code} {answer.text[:2000]}\n"
        _report({"step": name, "ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": trace})
        raise SystemExit(1) from None
    _report({"step": name, "ok": True, "seconds": round(time.monotonic() - started, 2)})


def until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something other than ``None`` or ``False``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last is not None and last is not False:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Hooks:
    """A webhook handler on loopback, as a WAHA user writes one: every POST's JSON body is kept, and answered 200."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        received, lock = self.received, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/waha"

    def wait(self, what: str, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """The first body received that ``match`` accepts."""
        return until(lambda: next((body for body in list(self.received) if match(body)), None), what, timeout)

    def wait_count(self, what: str, match: Callable[[dict[str, Any]], bool], count: int) -> None:
        """Until ``count`` bodies that ``match`` accepts have been received."""
        until(lambda: sum(1 for body in list(self.received) if match(body)) >= count, what)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Phone:
    """The simulator's side: the phone that scans a QR code, and a contact writing to the linked account."""

    flow: Flow

    def scan(self, qr: str) -> None:
        httpx.post(f"{self.flow.sim_url}/phone/scan", json={"phone": self.flow.phone, "qr": qr}).raise_for_status()

    def receive(self, text: str) -> None:
        """``text`` from the flow's contact to the linked account."""
        response = httpx.post(
            f"{self.flow.sim_url}/devices/{self.flow.phone}/messages",
            json={"from": self.flow.peer, "text": text, "count": 1},
        )
        response.raise_for_status()


def is_status(body: dict[str, Any], status: str) -> bool:
    """Whether a webhook's body is WAHA's ``session.status`` event for ``status``."""
    payload = body.get("payload")
    return body.get("event") == "session.status" and isinstance(payload, dict) and payload.get("status") == status


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a PNG, read as a phone's camera reads it."""
    import zxingcpp
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, f"{len(found)} codes in the picture"
    text: str = found[0].text
    return text

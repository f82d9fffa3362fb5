"""Request bodies against a real gateway process: bounded before they are read, and never read for a caller without
a valid key; and what a WebSocket client may send to the event stream. The requests go over a raw connection so that
a test can send headers and hold the body back: an answer that arrives before the body was sent proves the body was
not waited for."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, serve

pytestmark = pytest.mark.e2e

ADMIN = "bodies-admin-key-0123456789abcdef"
MEDIA_MAX = 30_000  # the body limit follows: 4/3 of it plus 64 KiB
LIMIT = 4 * 10_000 + 64 * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("bodies")
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        WAGATE_MEDIA_MAX_BYTES=str(MEDIA_MAX),
    )
    served = serve(tmp, env, "--demo")
    served.wait_healthy()
    yield served
    served.terminate()


@pytest.fixture(scope="module")
def key(gateway: Served) -> str:
    made = loopback.post(gateway.base_url + "/api/tenants", json={"name": "t"}, headers={"X-Api-Key": ADMIN})
    assert made.status_code == 201, made.text
    secret: str = made.json()["api_key"]
    return secret


def _connection(gateway: Served) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(gateway.base_url.removeprefix("http://"), timeout=5)


def _headers_only(gateway: Served, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any], str | None]:
    """Send a POST's headers and none of its body; the answer, as it arrives (within 5 s)."""
    conn = _connection(gateway)
    try:
        conn.putrequest("POST", path)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            conn.putheader(name, value)
        conn.endheaders()
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read()), answer.getheader("connection")
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/api/sendText", "/api/sessions", "/api/tenants", "/sim/phone/scan"])
@pytest.mark.parametrize("framing", [{"Content-Length": "100"}, {"Transfer-Encoding": "chunked"}])
def test_a_body_without_a_valid_key_is_refused_before_it_is_sent(
    gateway: Served, path: str, framing: dict[str, str]
) -> None:
    status, body, connection = _headers_only(gateway, path, framing)
    assert (status, body["error"]["code"]) == (401, "missing_api_key")
    assert connection == "close"  # what the client still sends is not read
    status, body, _ = _headers_only(gateway, path, {**framing, "X-Api-Key": "wag_not-a-key"})
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")


@pytest.mark.parametrize("api_key", [None, "valid"])
def test_a_declared_length_above_the_limit_is_refused_at_once(gateway: Served, key: str, api_key: str | None) -> None:
    headers = {"Content-Length": str(300 * 1024 * 1024)} | ({"X-Api-Key": key} if api_key else {})
    status, body, connection = _headers_only(gateway, "/api/sendText", headers)
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert str(LIMIT) in body["error"]["message"]
    assert connection == "close"


def test_a_chunked_body_is_cut_off_past_the_limit(gateway: Served, key: str) -> None:
    conn = _connection(gateway)
    try:
        conn.putrequest("POST", "/api/sendText")
        conn.putheader("X-Api-Key", key)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * 16 * 1024
        sent = 0
        for _ in range(LIMIT // len(chunk) + 2):
            conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        assert sent > LIMIT
        answer = conn.getresponse()
        body = json.loads(answer.read())
    finally:
        conn.close()
    assert (answer.status, body["error"]["code"]) == (413, "body_too_large")


def test_a_media_as_large_as_allowed_gets_through(gateway: Served, key: str) -> None:
    """The largest media, base64 in JSON, is not refused for its size (the session does not exist: 404)."""
    data = base64.b64encode(b"\0" * MEDIA_MAX).decode()
    payload = {"session": "none", "chatId": "+15550002", "file": {"mimetype": "image/png", "data": data}}
    answer = loopback.post(gateway.base_url + "/api/sendImage", json=payload, headers={"X-Api-Key": key})
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "session_not_found"


def test_a_keyed_request_is_answered_as_before(gateway: Served, key: str) -> None:
    headers = {"X-Api-Key": key}
    made = loopback.post(gateway.base_url + "/api/sessions", json={"name": "s", "start": False}, headers=headers)
    assert made.status_code == 201, made.text
    refused = loopback.post(gateway.base_url + "/api/tenants", json={"name": "x"}, headers={"X-Api-Key": key})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "admin_key_required")


def test_the_event_stream_refuses_large_client_messages(gateway: Served, key: str) -> None:
    url = gateway.base_url.replace("http://", "ws://") + "/ws"
    with connect(url, additional_headers={"X-Api-Key": key}, open_timeout=10) as ws:
        ws.send("ping")  # small messages are read and ignored
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        ws.send("x" * 64 * 1024)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009

"""Linking a phone with real processes: QR code (decoded by an independent decoder) and pairing code."""

from __future__ import annotations

import base64
import io
import time

import pytest
import zxingcpp
from PIL import Image

from tests.support import loopback
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def decode_qr(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    text: str = found[0].text
    return text


def test_qr_login_timings_and_decoding(stack: Stack) -> None:
    with stack.http as http:
        created_at = time.monotonic()
        assert http.post("/api/sessions", json={"name": "sales"}).status_code == 201
        stack.wait_status("sales", "SCAN_QR_CODE", timeout=2)
        assert time.monotonic() - created_at < 2
        png = http.get("/api/sales/auth/qr", params={"format": "image"})
        assert png.headers["content-type"] == "image/png"
        value = decode_qr(png.content)
        assert http.get("/api/sales/auth/qr", params={"format": "raw"}).json() == {"value": value}
        as_json = http.get("/api/sales/auth/qr", headers={"Accept": "application/json"}).json()
        assert as_json["mimetype"] == "image/png"
        assert decode_qr(base64.b64decode(as_json["data"])) == value
        json_image = http.get("/api/sales/auth/qr", params={"format": "image"}, headers={"Accept": "application/json"})
        assert decode_qr(base64.b64decode(json_image.json()["data"])) == value
        asked_png = http.get("/api/sales/auth/qr", headers={"Accept": "image/png, application/json;q=0.5"})
        assert asked_png.headers["content-type"] == "image/png"
        assert http.get("/api/sessions/sales/me").status_code == 204  # not linked yet

    scanned_at = time.monotonic()
    stack.sim_post("/phone/scan", {"phone": "+15550001", "qr": value})
    working = stack.wait_status("sales", "WORKING", timeout=2)
    assert time.monotonic() - scanned_at < 2
    # WAHA's MeInfo: the account as N@c.us, the linked device's own JID beside it.
    assert (working["me"]["id"], working["me"]["jid"].split(":")[0]) == ("15550001@c.us", "15550001")
    with stack.http as http:
        assert http.get("/api/sessions/sales/me").json() == working["me"]
        # Outside SCAN_QR_CODE there is no QR code to show.
        refused = http.get("/api/sales/auth/qr")
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "not_scanning"
    statuses = [e["to_status"] for e in reversed(stack.history("sales")) if e["kind"] == "status"]
    assert statuses == ["STARTING", "SCAN_QR_CODE", "STARTING", "WORKING"]


def test_unknown_qr_is_refused_by_the_phone(stack: Stack) -> None:
    stack.link("a", "+15550001")
    unknown = loopback.post(stack.sim.base_url + "/phone/scan", json={"phone": "+15550009", "qr": "2@not-a-code"})
    assert unknown.status_code == 404


def test_pairing_code_login(stack: Stack) -> None:
    with stack.http as http:
        assert http.post("/api/sessions", json={"name": "support"}).status_code == 201
        stack.wait_status("support", "SCAN_QR_CODE")
        bad = http.post("/api/support/auth/request-code", json={"phoneNumber": "12"})
        assert bad.status_code == 422
        answer = http.post("/api/support/auth/request-code", json={"phoneNumber": "+15550002"})
        assert answer.status_code == 201, answer.text
        code = answer.json()["code"]
        assert len(code) == 9
        assert code[4] == "-"
    # The code works only for the phone it was asked for.
    assert (
        loopback.post(stack.sim.base_url + "/phone/pair", json={"phone": "+15550003", "code": code}).status_code == 404
    )
    stack.sim_post("/phone/pair", {"phone": "+15550002", "code": code})
    assert stack.wait_status("support", "WORKING")["me"]["id"] == "15550002@c.us"
    with stack.http as http:
        late = http.post("/api/support/auth/request-code", json={"phoneNumber": "+15550002"})
        assert late.status_code == 422

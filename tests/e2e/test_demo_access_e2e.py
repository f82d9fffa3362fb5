"""The demo's simulator (``wagate serve --demo``, its control API at ``/sim``) behind the gateway's keys: nothing
without a key, a tenant only its own sessions' devices and codes, the admin everything; and no demo in production."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, free_port, serve
from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e

ADMIN = "demo-admin-key-0123456789abcdef-0123"  # long enough for production
PHONE_A, PHONE_B, PHONE_CODE = "+15550101", "+15550102", "+15550103"
CONTROL: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/sim/phone/scan", {"phone": PHONE_A, "qr": "x"}),
    ("POST", "/sim/phone/pair", {"phone": PHONE_A, "code": "ABCD-EFGH"}),
    ("POST", f"/sim/devices/{PHONE_A}/messages", {"from": "+15550002", "text": "hi"}),
    ("POST", f"/sim/devices/{PHONE_A}/contacts", {"contacts": [{"phone": "+15550002", "name": "Bo"}]}),
    ("POST", f"/sim/devices/{PHONE_A}/groups", {"subject": "g", "participants": ["+15550002"]}),
    ("POST", f"/sim/devices/{PHONE_A}/read", {"ids": ["X"]}),
    ("POST", f"/sim/devices/{PHONE_A}/faults", {"kind": "logout"}),
    ("GET", f"/sim/devices/{PHONE_A}", None),
    ("GET", f"/sim/devices/{PHONE_A}/sent", None),
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("demo")
    env = clean_env(WAGATE_DATA_DIR=str(tmp / "data"), WAGATE_ADMIN_KEY=ADMIN, WAGATE_KEYS=TEST_KEK)
    served = serve(tmp, env, "--demo")
    served.wait_healthy()
    yield served
    served.terminate()


def _client(demo: Served, key: str) -> httpx.Client:
    return loopback.client(base_url=demo.base_url, headers={"X-Api-Key": key}, timeout=10)


def _tenant(demo: Served, name: str) -> httpx.Client:
    with _client(demo, ADMIN) as admin:
        made = admin.post("/api/tenants", json={"name": name})
    assert made.status_code == 201, made.text
    return _client(demo, made.json()["api_key"])


def _status(http: httpx.Client, name: str) -> str:
    status: str = http.get(f"/api/sessions/{name}").json()["status"]
    return status


def _showing_qr(http: httpx.Client, name: str) -> str:
    assert http.post("/api/sessions", json={"name": name}).status_code == 201
    wait_for(lambda: _status(http, name) == "SCAN_QR_CODE", 10, f"{name} to show a QR code")
    qr: str = http.get(f"/api/{name}/auth/qr", params={"format": "raw"}).json()["value"]
    return qr


@pytest.mark.parametrize(("method", "path", "body"), CONTROL)
def test_no_key_no_control(demo: Served, method: str, path: str, body: dict[str, Any] | None) -> None:
    for headers in ({}, {"X-Api-Key": "wag_not-a-key"}):
        answer = loopback.request(method, demo.base_url + path, json=body, headers=headers, timeout=10)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
    assert loopback.get(demo.base_url + "/sim/health", timeout=10).json() == {"status": "ok"}  # no count for strangers


def test_a_tenant_drives_its_own_devices_and_no_one_elses(demo: Served) -> None:
    with _tenant(demo, "a") as a, _tenant(demo, "b") as b, _client(demo, ADMIN) as admin:
        qr_a, qr_b = _showing_qr(a, "sa"), _showing_qr(b, "sb")

        # Another tenant's QR code is as unknown as a made-up one; its own links its session.
        stolen = b.post("/sim/phone/scan", json={"phone": PHONE_B, "qr": qr_a})
        assert stolen.status_code == 404, stolen.text
        assert a.post("/sim/phone/scan", json={"phone": PHONE_A, "qr": qr_a}).status_code == 200
        wait_for(lambda: _status(a, "sa") == "WORKING", 10, "sa WORKING")
        # Linking a phone another tenant's session uses would log that session out: refused.
        taken = b.post("/sim/phone/scan", json={"phone": PHONE_A, "qr": qr_b})
        assert taken.status_code == 409, taken.text
        assert b.post("/sim/phone/scan", json={"phone": PHONE_B, "qr": qr_b}).status_code == 200
        wait_for(lambda: _status(b, "sb") == "WORKING", 10, "sb WORKING")

        # Its own device: inject, read what it sent; another's: 404 on every route, and nothing happens to it.
        injected = a.post(f"/sim/devices/{PHONE_A}/messages", json={"from": "+15550002", "text": "hi", "count": 2})
        assert injected.status_code == 200, injected.text
        wait_for(lambda: a.get(f"/sim/devices/{PHONE_A}").json()["messages_acked"] == 2, 10, "two messages acked")
        sent = a.post("/api/sendText", json={"session": "sa", "chatId": "+15550002", "text": "for a only"})
        assert sent.status_code == 201, sent.text
        wait_for(lambda: a.get(f"/sim/devices/{PHONE_A}/sent").json(), 10, "a's message at the simulator")
        for method, path, body in CONTROL[2:]:
            other = b.request(method, path, json=body)
            assert other.status_code == 404, (path, other.text)
        assert b.get("/sim/health").json() == {"status": "ok", "devices": 1}
        assert _status(a, "sa") == "WORKING"
        assert a.get(f"/sim/devices/{PHONE_A}").json()["paired"]

        # The admin sees and drives every device.
        assert [m["text"] for m in admin.get(f"/sim/devices/{PHONE_A}/sent").json()] == ["for a only"]
        assert admin.get(f"/sim/devices/{PHONE_B}").status_code == 200
        assert admin.get("/sim/health").json() == {"status": "ok", "devices": 2}
        assert admin.post(f"/sim/devices/{PHONE_B}/faults", json={"kind": "logout"}).status_code == 200
        wait_for(lambda: _status(b, "sb") != "WORKING", 10, "sb logged out by the admin")


def test_a_pairing_code_is_entered_only_by_its_tenant(demo: Served) -> None:
    with _tenant(demo, "c") as c, _tenant(demo, "d") as d:
        _showing_qr(c, "coded")
        code = c.post("/api/coded/auth/request-code", json={"phoneNumber": PHONE_CODE})
        assert code.status_code == 201, code.text
        entered = {"phone": PHONE_CODE, "code": code.json()["code"]}
        assert d.post("/sim/phone/pair", json=entered).status_code == 404
        assert c.post("/sim/phone/pair", json=entered).status_code == 200
        wait_for(lambda: _status(c, "coded") == "WORKING", 10, "coded WORKING")


def test_the_demo_is_refused_in_production(tmp_path: Path) -> None:
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"), WAGATE_ADMIN_KEY=ADMIN, WAGATE_KEYS=TEST_KEK, WAGATE_ENV="production"
    )
    run = subprocess.run(
        [sys.executable, "-m", "wagate", "serve", "--demo", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "WAGATE_ENV=production" in lines[0]

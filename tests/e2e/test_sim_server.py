"""``wagate sim-server`` as a process: its control API (answered through the aiohttp host), its device socket, its
state across a SIGTERM, and a port it cannot take."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import loopback
from tests.support.procs import clean_env, sim_server
from wagate.engines.sim.protocol import frame
from wagate.engines.sim.wire import SocketClosed, open_socket

pytestmark = pytest.mark.e2e


def test_the_control_api_answers_and_refuses_as_the_app_does(tmp_path: Path) -> None:
    sim = sim_server(tmp_path)
    try:
        with loopback.client(base_url=sim.base_url, timeout=5) as http:
            health = http.get("/health")
            assert health.status_code == 200
            assert health.headers["content-type"] == "application/json"
            assert health.json() == {"status": "ok", "devices": 0}
            bad = http.post("/phone/scan", json={"phone": "not a phone", "qr": "x"})
            assert bad.status_code == 422
            assert bad.json()["error"]["code"] == "sim_error"
            assert "phone" in bad.json()["error"]["message"]
            extra = http.post("/phone/scan", json={"phone": "+15550001", "qr": "x", "more": 1})
            assert extra.status_code == 422
            broken = http.post("/phone/scan", content=b"{not json", headers={"content-type": "application/json"})
            assert broken.status_code == 422
            unknown_qr = http.post("/phone/scan", json={"phone": "+15550001", "qr": "no-such-code"})
            assert unknown_qr.status_code == 404, unknown_qr.text
            assert http.get("/devices/+15559999").status_code == 404
            assert http.get("/no/such/route").status_code == 404
            assert http.delete("/health").status_code == 405
            assert http.get("/openapi.json").json()["info"]["title"] == "wagate simulator"
    finally:
        assert sim.terminate() == 0


def test_with_a_key_the_control_api_wants_it(tmp_path: Path) -> None:
    sim = sim_server(tmp_path, "--key", "sim-key-0123456789")
    try:
        with loopback.client(base_url=sim.base_url, timeout=5) as http:
            assert http.get("/health").json() == {"status": "ok"}  # open, without the count
            for headers in ({}, {"X-Api-Key": "another"}):
                refused = http.get("/devices/+15559999", headers=headers)
                assert refused.status_code == 401, refused.text
                scan = http.post("/phone/scan", json={"phone": "+15550001", "qr": "x"}, headers=headers)
                assert scan.status_code == 401, scan.text
            keyed = {"X-Api-Key": "sim-key-0123456789"}
            assert http.get("/health", headers=keyed).json() == {"status": "ok", "devices": 0}
            assert http.get("/devices/+15559999", headers=keyed).status_code == 404
            assert http.post("/phone/scan", json={"phone": "+15550001", "qr": "x"}, headers=keyed).status_code == 404
    finally:
        assert sim.terminate() == 0


async def test_the_device_socket_logs_in_links_and_survives_a_restart(tmp_path: Path) -> None:
    sim = sim_server(tmp_path)
    ws_url = sim.base_url.replace("http", "ws") + "/ws"
    sock = await open_socket(ws_url)
    await sock.send(frame("hello", device=None))
    qr = json.loads(await sock.recv())
    assert qr["type"] == "qr"
    async with loopback.async_client(base_url=sim.base_url) as http:
        scanned = await http.post("/phone/scan", json={"phone": "+15550001", "qr": qr["code"]})
        assert scanned.status_code == 200, scanned.text
    paired = json.loads(await sock.recv())
    assert paired["type"] == "paired"
    device = paired["device"]
    await sock.send(frame("paired_ack"))
    assert json.loads(await sock.recv())["type"] == "connected"
    await sock.send("[1, 2]")  # not an object: ignored
    sock._p._ws.send_binary(b"\x00")  # a binary frame, which the protocol forbids: no public way to send one
    sock._p._flush()

    async def drain() -> None:  # what the server sent before (its address book), then the close
        async with asyncio.timeout(5):
            while True:
                assert json.loads(await sock.recv())["type"] in ("contacts", "groups")

    with pytest.raises(SocketClosed) as closed:
        await drain()
    assert closed.value.code == 1003
    assert await asyncio.to_thread(sim.terminate) == 0

    again = sim_server(tmp_path)  # the state file kept the device
    try:
        sock = await open_socket(again.base_url.replace("http", "ws") + "/ws")
        await sock.send(frame("hello", device={"id": device["id"], "secret": device["secret"]}))
        connected = json.loads(await sock.recv())
        assert connected["type"] == "connected"
        assert connected["me"]["phone"] == "+15550001"
        await sock.close()
    finally:
        assert await asyncio.to_thread(again.terminate) == 0


def test_a_port_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    sim = sim_server(tmp_path)
    try:
        port = sim.base_url.rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "wagate", "sim-server", "--port", port, "--state", str(tmp_path / "other.json")],
            env=clean_env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 1
        assert b"cannot listen" in second.stdout + second.stderr
    finally:
        assert sim.terminate() == 0

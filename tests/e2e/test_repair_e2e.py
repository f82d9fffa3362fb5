"""Corruption repair and backups with real processes: a contact's Bad MAC burst, a device-wide storm (quarantine),
a reset by hand, backup rotation and restore."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.mailbox import Mailbox
from tests.support.probes import scrape, stored_records
from tests.support.procs import free_port, run_wagate
from tests.support.stack import ADMIN, Stack, wait_for
from wagate.config import Settings
from wagate.gateway import Gateway

pytestmark = pytest.mark.e2e

PHONE = "+15550001"


def events_of(stack: Stack, types: str) -> list[dict[str, Any]]:
    with stack.http as http:
        found: list[dict[str, Any]] = http.get("/api/events", params={"types": types, "limit": 1000}).json()
        return found


def backups(stack: Stack, name: str) -> list[dict[str, Any]]:
    with stack.http as http:
        response = http.get(f"/api/sessions/{name}/backups")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found


def test_a_contacts_bad_mac_burst_resets_only_that_contact(stack: Stack) -> None:
    stack.link("main", PHONE)
    before = scrape(stack)
    assert before[("wagate_decrypt_failures_total", ())] == 0
    stack.sim_post(f"/devices/{PHONE}/faults", {"kind": "bad_mac", "contact": "+15550200", "count": 1000})
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550300", "text": "other", "count": 50})
    wait_for(lambda: stack.device(PHONE)["decrypt_failures"] >= 1000, 30, "1,000 failures")
    wait_for(lambda: stack.device(PHONE)["pending"] == 0, 20, "the queue drained")
    assert stack.device(PHONE)["contact_resets"] >= 1
    session = stack.session("main")
    assert (session["status"], session["reason"]) == ("WORKING", None)
    texts = {e["payload"]["body"] for e in events_of(stack, "message")}
    assert {f"other #{n}" for n in range(1, 51)} <= texts
    assert events_of(stack, "session.corrupted") == []
    assert backups(stack, "main") == []
    after = scrape(stack)
    assert after[("wagate_decrypt_failures_total", ())] >= 1000
    assert after[("wagate_contact_resets_total", ())] >= 1
    assert after[("wagate_quarantines_total", ())] == 0
    assert after[("wagate_sessions", (("status", "WORKING"),))] == 1
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("wagate_http_request_duration")}
    assert "/api/sessions/{name}" in routes  # templates, not names
    assert after[("wagate_store_operation_duration_seconds_count", (("operation", "write"),))] > 0
    # The reset contact's new messages decrypt under its new chain.
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550200", "text": "fresh", "count": 5})
    wait_for(
        lambda: {f"fresh #{n}" for n in range(1, 6)} <= {e["payload"]["body"] for e in events_of(stack, "message")},
        10,
        "the reset contact's messages",
    )


def test_a_device_wide_storm_quarantines_and_the_backup_restores(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        stack = stack_factory(
            WAGATE_SMTP_HOST="127.0.0.1", WAGATE_SMTP_PORT=str(smtp_port), WAGATE_SMTP_STARTTLS="false"
        )
        stack.start()
        assert stack.gateway is not None
        made = loopback.post(
            stack.gateway.base_url + "/api/tenants",
            json={"name": "acme", "contact_email": "ops@example.com"},
            headers={"X-Api-Key": ADMIN},
        )
        assert made.status_code == 201
        stack.key = {"X-Api-Key": made.json()["api_key"]}
        storm_and_restore(stack, tmp_path)
        wait_for(lambda: mailbox.messages, 10, "the quarantine email")
        (mail,) = mailbox.messages
        assert mail["To"] == "ops@example.com"
        assert "quarantined" in mail["Subject"]
    finally:
        controller.stop()


def storm_and_restore(stack: Stack, tmp_path: Path) -> None:
    stack.link("main", PHONE)
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550300", "text": "before", "count": 20})
    wait_for(lambda: stack.device(PHONE)["messages_acked"] >= 20, 10, "messages before the storm")
    before = stored_records(tmp_path, "main")
    assert any(ns == "chain" for ns, _, _ in before)
    stack.sim_post(f"/devices/{PHONE}/faults", {"kind": "bad_mac", "count": 50})
    quarantined = stack.wait_status("main", "SCAN_QR_CODE", timeout=15, reason="corrupted")
    assert quarantined["me"] is None
    assert "quarantined" in (quarantined["note"] or "")
    assert stored_records(tmp_path, "main") == []  # wiped
    (backup,) = backups(stack, "main")
    assert (backup["reason"], backup["records"]) == ("corrupted", len(before))
    counted = scrape(stack)
    assert counted[("wagate_quarantines_total", ())] == 1
    assert counted[("wagate_backups_total", ())] == 1
    assert counted[("wagate_sessions", (("status", "SCAN_QR_CODE"),))] == 1
    (event,) = events_of(stack, "session.corrupted")
    assert event["payload"] == {"cause": "corruption", "backup": backup["id"]}
    assert stack.raw_qr("main")  # a fresh QR code to link again

    with stack.http as http:
        refused = http.post(f"/api/sessions/main/backups/{backup['id']}/restore")
        assert refused.status_code == 409, refused.text  # it runs: no restore
        assert refused.json()["error"]["code"] == "session_running"
        assert http.post("/api/sessions/main/stop").status_code == 201
    stack.wait_status("main", "STOPPED")
    with hold_lease(tmp_path, "main"), stack.http as http:  # another worker holds the lease
        refused = http.post(f"/api/sessions/main/backups/{backup['id']}/restore")
        assert refused.status_code == 409, refused.text
    with stack.http as http:
        missing = http.post(f"/api/sessions/main/backups/bak_{'0' * 26}/restore")
        assert missing.status_code == 404
        restored = http.post(f"/api/sessions/main/backups/{backup['id']}/restore")
        assert restored.status_code == 200, restored.text
        assert restored.json()["restored"] == len(before)
    assert stored_records(tmp_path, "main") == before  # the identical auth state
    attempts = stack.device(PHONE)["connection_attempts"]
    with stack.http as http:
        assert http.post("/api/sessions/main/start").status_code == 201
    stack.wait_status("main", "WORKING", timeout=15)  # no scan
    assert stack.device(PHONE)["connection_attempts"] > attempts
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550300", "text": "after", "count": 3})
    wait_for(lambda: stack.device(PHONE)["messages_acked"] >= 23, 10, "messages after the restore decrypt")


class hold_lease:
    """Another worker's lease on a session, taken in the gateway's database for the duration of a block."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp = tmp
        self.name = name

    def _run(self, release: bool) -> None:
        async def act() -> None:
            gateway = await Gateway.open(Settings.model_validate({"data_dir": self.tmp / "data", "keys": TEST_KEK}))
            try:
                for tenant in await gateway.store.tenants.list_all():
                    session = await gateway.store.sessions.get(tenant.id, self.name)
                    if session is None:
                        continue
                    if release:
                        lease = await gateway.store.leases.get(session.id)
                        assert lease is not None
                        await gateway.store.leases.release(session.id, "elsewhere#1", lease.epoch)
                    else:
                        assert await gateway.store.leases.acquire(session.id, "elsewhere#1", 60) is not None
            finally:
                await gateway.close()

        asyncio.run(act())

    def __enter__(self) -> None:
        self._run(release=False)

    def __exit__(self, *exc: object) -> None:
        self._run(release=True)


def test_reset_by_hand_and_backup_rotation(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(WAGATE_BACKUPS_KEEP="3")
    stack.start()
    stack.tenant()
    stack.link("main", PHONE)
    made: list[str] = []
    for round_ in range(4):
        with stack.http as http:
            reset = http.post("/api/sessions/main/reset")
            assert reset.status_code == 200, reset.text
        stack.wait_status("main", "SCAN_QR_CODE", timeout=15, reason="corrupted")
        newest = backups(stack, "main")[0]
        assert newest["reason"] == "reset"
        made.append(newest["id"])
        if round_ < 3:  # link again: the next reset has state to back up
            stack.sim_post("/phone/scan", {"phone": PHONE, "qr": stack.raw_qr("main")})
            stack.wait_status("main", "WORKING", timeout=15)
    assert [b["id"] for b in backups(stack, "main")] == list(reversed(made[1:]))  # exactly the last 3
    resets = events_of(stack, "session.reset")
    assert [e["payload"]["backup"] for e in resets] == made
    assert all(e["payload"]["cause"] == "api" for e in resets)
    other = other_tenant_key(stack)
    assert stack.gateway is not None
    assert loopback.get(stack.gateway.base_url + "/api/sessions/main/backups", headers=other).status_code == 404


def other_tenant_key(stack: Stack) -> dict[str, str]:
    assert stack.gateway is not None
    made = loopback.post(
        stack.gateway.base_url + "/api/tenants",
        json={"name": "other"},
        headers={"X-Api-Key": "stack-admin-key-0123456789abcdef"},
    )
    assert made.status_code == 201
    return {"X-Api-Key": made.json()["api_key"]}


def wagate_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_wagate(*args, env=env)


def test_export_and_import_into_another_installation(stack: Stack, tmp_path: Path) -> None:
    stack.link("main", PHONE)
    stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550300", "text": "before", "count": 10})
    wait_for(lambda: stack.device(PHONE)["messages_acked"] >= 10, 10, "messages before the move")
    tenant_id = stack_tenant(stack)
    with stack.http as http:
        assert http.post("/api/sessions/main/stop").status_code == 201
    stack.wait_status("main", "STOPPED")
    exported = tmp_path / "main.wagate"
    result = wagate_cli(
        stack.env, "backup", "export", "--tenant", tenant_id, "--session", "main", "--out", str(exported)
    )
    assert result.returncode == 0, result.stderr
    assert TEST_KEK.split(":")[1] not in result.stdout + result.stderr
    assert exported.stat().st_mode & 0o777 == 0o600
    assert b"+15550001" not in exported.read_bytes()  # sealed, not readable
    again = wagate_cli(
        stack.env, "backup", "export", "--tenant", tenant_id, "--session", "main", "--out", str(exported)
    )
    assert again.returncode == 2
    assert "exists" in again.stderr

    # Another installation: its own data directory, the same keys, the same WhatsApp.
    other = Stack(tmp_path, {**stack.env, "WAGATE_DATA_DIR": str(tmp_path / "other")}, stack.sim)
    other.start()
    try:
        other.tenant("acme")
        tampered = tmp_path / "tampered.wagate"
        data = bytearray(exported.read_bytes())
        data[-5] ^= 1
        tampered.write_bytes(bytes(data))
        refused = wagate_cli(other.env, "backup", "import", str(tampered), "--tenant", "acme")
        assert refused.returncode == 2
        with other.http as http:
            assert http.get("/api/sessions", params={"all": "true"}).json() == []  # nothing half-made
        imported = wagate_cli(other.env, "backup", "import", str(exported), "--tenant", "acme")
        assert imported.returncode == 0, imported.stderr
        other.wait_status("main", "WORKING", timeout=15)
        assert all(e["to_status"] != "SCAN_QR_CODE" for e in other.history("main"))  # no scan
        stack.sim_post(f"/devices/{PHONE}/messages", {"from": "+15550300", "text": "after", "count": 10})
        wait_for(lambda: stack.device(PHONE)["messages_acked"] >= 20, 10, "messages in the new installation")
        assert stack.device(PHONE)["decrypt_failures"] == 0  # the ratchet moved with the session
    finally:
        other.close()


def stack_tenant(stack: Stack) -> str:
    with stack.http as http:
        events = http.get("/api/events", params={"limit": 1}).json()
        tenant: str = events[0]["tenant"]
        return tenant

"""The simulator's state file: every field of a device survives a save and a load, and a snapshot is a copy."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

from wagate.engines.sim.state import SENT_KEPT, Chain, Device, Queued, StateFile


def a_device() -> Device:
    device = Device("+15550001", "dev1", "ab" * 16, "Shop")
    # Every field away from its default, so that a field the snapshot forgot shows as a difference.
    for f in dataclasses.fields(Device):
        if f.name in ("phone", "device_id", "secret", "push_name"):
            continue
        if f.type in ("bool",):
            setattr(device, f.name, True)
        elif f.type in ("int", "float"):
            setattr(device, f.name, 7)
    device.chains = {"c@s.whatsapp.net": Chain(3, "cd" * 32)}
    device.queue = {
        "M1": Queued(1, "M1", "c@s.whatsapp.net", "c@s.whatsapp.net", 3, "ee", "ff", "hi", 1.5, delivered=2),
        "M2": Queued(2, "M2", "c@s.whatsapp.net", "g@g.us", 4, "ee", "ff", "pic", 2.5, media={"mimetype": "x/y"}),
        "M3": Queued(3, "M3", "c@s.whatsapp.net", "c@s.whatsapp.net", 5, "ee", "ff", "", 3.5, content={"fromMe": True}),
    }
    device.sent = [{"id": "OUT1", "to": "x"}]
    device.receipts = [{"id": "OUT1", "status": "delivered", "ts": 3.0}]
    device.received = ["IN1"]
    device.contacts = {"c@s.whatsapp.net": "Ann"}
    device.groups = {"g@g.us": {"subject": "S", "participants": ["a"]}}
    device.attempt_log = [[1.0, "ok"]]
    return device


def test_every_field_survives_a_save_and_a_load(tmp_path: Path) -> None:
    device = a_device()
    state = StateFile(tmp_path / "sim.json")
    state.save({device.phone: device.to_json()})
    assert state.load() == {device.phone: device}
    assert set(device.to_json()) == {f.name for f in dataclasses.fields(Device)}
    assert set(device.to_json()["queue"][0]) == {f.name for f in dataclasses.fields(Queued)}


def test_a_snapshot_does_not_change_with_the_device() -> None:
    device = a_device()
    snapshot = device.to_json()
    device.queue["M1"].delivered += 1
    device.sent.append({"id": "OUT2"})
    device.groups["g@g.us"]["subject"] = "changed"
    device.attempt_log[0][1] = "changed"
    assert Device.from_json(snapshot) == a_device()


def test_the_sent_list_keeps_the_latest_and_counts_them_all() -> None:
    device = Device("+15550001", "dev1", "ab" * 16, "Shop")
    for n in range(2 * SENT_KEPT + 5):
        device.record_sent({"id": f"OUT{n}"})
    assert device.sent_total == 2 * SENT_KEPT + 5
    assert SENT_KEPT <= len(device.sent) < 2 * SENT_KEPT
    assert device.sent[-1] == {"id": f"OUT{2 * SENT_KEPT + 4}"}
    assert [r["id"] for r in device.sent] == [
        f"OUT{n}" for n in range(2 * SENT_KEPT + 5 - len(device.sent), 2 * SENT_KEPT + 5)
    ]
    # A state file from before the count: the messages it lists are counted.
    old = device.to_json()
    del old["sent_total"]
    assert Device.from_json(old).sent_total == len(device.sent)


def test_the_state_file_is_its_owners_alone_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        StateFile(tmp_path / "sim" / "state.json").save({"+15550001": a_device().to_json()})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "sim" / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sim").stat().st_mode) == 0o700

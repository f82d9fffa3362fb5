"""The simulator's durable state: linked devices, their ratchets, queued messages and counters.

Saved as one JSON file, atomically (write, fsync, rename), at most every ``flush_interval`` seconds while it changes
and when the server stops, so the fake WhatsApp outlives the gateway processes under test and its own restarts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Chain:
    counter: int
    key: str  # hex


@dataclass(slots=True)
class Queued:
    """An inbound message waiting for the device's ack. ``bad`` ones carry a wrong MAC on purpose."""

    seq: int
    id: str
    sender: str
    chat: str
    counter: int
    step: str
    mac: str
    text: str
    ts: float
    bad: bool = False
    delivered: int = 0
    media: dict[str, Any] | None = None  # a media reference: mimetype, filename, size


@dataclass(slots=True)
class Device:
    phone: str
    device_id: str
    secret: str  # hex
    push_name: str
    logged_out: bool = False
    banned_until: float = 0.0
    refuse_until: float = 0.0
    slow_until: float = 0.0
    slow_delay: float = 0.0
    chains: dict[str, Chain] = field(default_factory=dict)
    queue: list[Queued] = field(default_factory=list)
    next_seq: int = 1
    sent: list[dict[str, Any]] = field(default_factory=list)  # every message the device sent, as received
    receipts: list[dict[str, Any]] = field(default_factory=list)  # {id, status, ts} not yet acknowledged
    contacts: dict[str, str] = field(default_factory=dict)  # jid -> name in the phone's address book
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # jid -> {subject, participants}
    connections_total: int = 0
    connection_attempts: int = 0
    attempt_log: list[list[Any]] = field(default_factory=list)  # [time, outcome], the last 200
    decrypt_failures: int = 0
    messages_queued: int = 0
    messages_delivered: int = 0
    deliveries_total: int = 0
    messages_acked: int = 0
    contact_resets: int = 0

    def log_attempt(self, at: float, outcome: str) -> None:
        self.connection_attempts += 1
        self.attempt_log.append([at, outcome])
        del self.attempt_log[:-200]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Device:
        data = dict(data)
        data["chains"] = {k: Chain(**v) for k, v in data.get("chains", {}).items()}
        data["queue"] = [Queued(**q) for q in data.get("queue", [])]
        return cls(**data)


class StateFile:
    """Loads and atomically saves the devices of a simulator."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[str, Device]:
        if self.path is None or not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text())
        return {phone: Device.from_json(data) for phone, data in raw.get("devices", {}).items()}

    def save(self, devices: dict[str, Device]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        payload = json.dumps({"version": 1, "devices": {p: asdict(d) for p, d in devices.items()}})
        with tmp.open("w") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

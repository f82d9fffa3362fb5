"""The simulator's durable state: linked devices, their ratchets, queued messages and counters.

Saved as one JSON file, atomically (write, fsync, rename), at most every ``flush_interval`` seconds while it changes
and when the server stops, so the fake WhatsApp outlives the gateway processes under test and its own restarts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SENT_KEPT", "Chain", "Device", "Queued", "StateFile"]

SENT_KEPT = 10_000


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
    content: dict[str, Any] | None = None  # what else the wire carries: a place, cards or a poll; fromMe


@dataclass(slots=True)
class Device:
    phone: str
    device_id: str
    secret: str  # hex
    push_name: str
    owner: str | None = None  # the label of the connection that linked it (the gateway's tenant): who may drive it
    logged_out: bool = False
    banned_until: float = 0.0
    refuse_until: float = 0.0
    slow_until: float = 0.0
    slow_delay: float = 0.0
    chains: dict[str, Chain] = field(default_factory=dict)
    queue: dict[str, Queued] = field(default_factory=dict)  # by id, in seq order (the order they were queued)
    next_seq: int = 1
    sent: list[dict[str, Any]] = field(default_factory=list)  # at least the last SENT_KEPT sent, as received
    sent_total: int = 0  # every message the device sent
    receipts: list[dict[str, Any]] = field(default_factory=list)  # {id, status, ts} not yet acknowledged
    received: list[str] = field(default_factory=list)  # ids of messages the device acknowledged, the last SENT_KEPT
    contacts: dict[str, str] = field(default_factory=dict)  # jid -> name in the phone's address book
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # jid -> {subject, participants}
    connections_total: int = 0
    replaced_total: int = 0  # live connections ended by a newer one for the device: two owners at once
    connection_attempts: int = 0
    attempt_log: list[list[Any]] = field(default_factory=list)  # [time, outcome], the last 200
    decrypt_failures: int = 0
    messages_queued: int = 0
    messages_delivered: int = 0
    deliveries_total: int = 0
    messages_acked: int = 0
    contact_resets: int = 0

    def record_sent(self, record: dict[str, Any]) -> None:
        """A message the device sent. At least the last :data:`SENT_KEPT` are kept (to confirm what the server has,
        and for read receipts), so that a long demo's state file does not grow without end; older ones are counted."""
        self.sent.append(record)
        self.sent_total += 1
        if len(self.sent) >= 2 * SENT_KEPT:  # trimmed in steps, not at every message
            del self.sent[:-SENT_KEPT]

    def record_received(self, ids: list[str]) -> None:
        """Messages the device took (acknowledged): what it can react to, as it can to what it sent."""
        self.received.extend(ids)
        if len(self.received) >= 2 * SENT_KEPT:
            del self.received[:-SENT_KEPT]

    def knows(self, message_id: str, *, sent: bool) -> bool:
        """Whether the device has the message: one it sent, or one it received."""
        if sent:
            return any(record["id"] == message_id for record in self.sent)
        return message_id in self.received

    def log_attempt(self, at: float, outcome: str) -> None:
        self.connection_attempts += 1
        self.attempt_log.append([at, outcome])
        del self.attempt_log[:-200]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Device:
        data = dict(data)
        data["chains"] = {k: Chain(**v) for k, v in data.get("chains", {}).items()}
        data["queue"] = {q["id"]: Queued(**q) for q in data.get("queue", [])}
        data.setdefault("sent_total", len(data.get("sent", [])))  # a state file written before the count was kept
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """The device as JSON values, copied: a thread can serialise it while the loop goes on changing the device."""
        return {
            "phone": self.phone,
            "device_id": self.device_id,
            "secret": self.secret,
            "push_name": self.push_name,
            "owner": self.owner,
            "logged_out": self.logged_out,
            "banned_until": self.banned_until,
            "refuse_until": self.refuse_until,
            "slow_until": self.slow_until,
            "slow_delay": self.slow_delay,
            "chains": {k: {"counter": c.counter, "key": c.key} for k, c in self.chains.items()},
            "queue": [_queued_json(q) for q in self.queue.values()],
            "next_seq": self.next_seq,
            "sent": list(self.sent),
            "sent_total": self.sent_total,
            "receipts": list(self.receipts),
            "received": list(self.received),
            "contacts": dict(self.contacts),
            "groups": {k: dict(g) for k, g in self.groups.items()},
            "connections_total": self.connections_total,
            "replaced_total": self.replaced_total,
            "connection_attempts": self.connection_attempts,
            "attempt_log": [list(entry) for entry in self.attempt_log],
            "decrypt_failures": self.decrypt_failures,
            "messages_queued": self.messages_queued,
            "messages_delivered": self.messages_delivered,
            "deliveries_total": self.deliveries_total,
            "messages_acked": self.messages_acked,
            "contact_resets": self.contact_resets,
        }


def _queued_json(q: Queued) -> dict[str, Any]:
    return {
        "seq": q.seq,
        "id": q.id,
        "sender": q.sender,
        "chat": q.chat,
        "counter": q.counter,
        "step": q.step,
        "mac": q.mac,
        "text": q.text,
        "ts": q.ts,
        "bad": q.bad,
        "delivered": q.delivered,
        "media": q.media,
        "content": q.content,
    }


class StateFile:
    """Loads and atomically saves the devices of a simulator."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[str, Device]:
        if self.path is None or not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text())
        return {phone: Device.from_json(data) for phone, data in raw.get("devices", {}).items()}

    def save(self, devices: dict[str, dict[str, Any]]) -> None:
        """Write devices as ``Device.to_json`` gave them."""
        if self.path is None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        payload = json.dumps({"version": 1, "devices": devices})
        # Owner only: the file holds every simulated device's secrets and messages.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

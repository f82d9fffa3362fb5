"""What the simulator and its engine share: phone numbers, ids, and the message ratchet.

The ratchet is a hash chain per (device, contact), stepped by a fresh random value carried in each message:
``ck[n] = HMAC(ck[n-1], step[n])`` and each message is authenticated with ``HMAC(ck[n], id|n|text)``. A device that
holds ``ck[n-1]`` verifies message ``n``; one that lost an update it had acknowledged lacks the steps of messages
that will never be sent again and fails ("Bad MAC"), exactly as a crashed WhatsApp client does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = ["PAIRING_ALPHABET", "decode_chain", "encode_chain", "frame", "initial_chain", "message_mac", "step_chain"]

PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"


def initial_chain(device_secret: bytes, contact: str) -> bytes:
    return hmac.new(device_secret, b"chain:" + contact.encode(), hashlib.sha256).digest()


def step_chain(chain_key: bytes, step: bytes) -> bytes:
    return hmac.new(chain_key, b"step:" + step, hashlib.sha256).digest()


def message_mac(chain_key: bytes, message_id: str, counter: int, text: str) -> str:
    payload = f"{message_id}|{counter}|{text}".encode()
    return hmac.new(chain_key, b"msg:" + payload, hashlib.sha256).hexdigest()[:32]


def encode_chain(counter: int, chain_key: bytes) -> bytes:
    return counter.to_bytes(8, "big") + chain_key


def decode_chain(raw: bytes) -> tuple[int, bytes]:
    return int.from_bytes(raw[:8], "big"), raw[8:]


def frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))

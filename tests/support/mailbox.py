"""An SMTP mailbox for aiosmtpd's controller: what the gateway's emails to tenants arrive in."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from typing import Any


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

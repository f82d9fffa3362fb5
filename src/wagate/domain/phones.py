"""Phone numbers as WhatsApp knows them: E.164 digits."""

from __future__ import annotations

import re

__all__ = ["PHONE", "phone_digits", "user_jid"]

PHONE = re.compile(r"^\+?[1-9][0-9]{5,14}$")


def phone_digits(phone: str) -> str:
    """The digits of an E.164 number; raises ``ValueError`` for anything else."""
    if not PHONE.fullmatch(phone):
        raise ValueError("a phone number is + and 6-15 digits, e.g. +15550001")
    return phone.lstrip("+")


def user_jid(phone: str) -> str:
    return f"{phone_digits(phone)}@s.whatsapp.net"

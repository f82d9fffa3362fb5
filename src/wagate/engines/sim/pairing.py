"""Linking a device: QR codes that rotate, pairing codes, the phone's scan, and the device it makes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets

from wagate.domain.phones import phone_digits
from wagate.engines.sim.core import SimCore
from wagate.engines.sim.link import CLOSE_QR_TIMEOUT, Link, Registration, SimError, me_of, normal_phone, owns
from wagate.engines.sim.protocol import PAIRING_ALPHABET, frame
from wagate.engines.sim.state import Device

__all__ = ["Pairing"]


class Pairing(SimCore):
    """The simulator's pairing: a connection without credentials shows QR codes until a phone scans one (or enters
    a pairing code), which makes the connection's device."""

    async def _rotate_qr(self, registration: Registration) -> None:
        link = registration.link
        for round_ in range(self.options.qr_count):
            ttl = self.options.qr_first_ttl if round_ == 0 else self.options.qr_ttl
            code = "2@" + ",".join(base64.b64encode(os.urandom(n)).decode() for n in (18, 32, 32))
            registration.codes.append(code)
            self._qr[code] = registration
            await link.send(frame("qr", code=code, ttl=ttl))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(registration.done.wait(), ttl)
            self._qr.pop(code, None)
            if registration.done.is_set():
                return
        if registration.pairing is not None:
            self._codes.pop(registration.pairing[1], None)
        await link.send(frame("qr_timeout"))
        await link.close(CLOSE_QR_TIMEOUT, "QR code timed out")

    async def _issue_pairing_code(self, link: Link, phone: str) -> None:
        registration = link.registration
        assert registration is not None
        try:
            phone_digits(phone)
        except ValueError as exc:
            await link.send(frame("error", code="bad_phone", detail=str(exc)))
            return
        raw = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(8))
        code = f"{raw[:4]}-{raw[4:]}"
        if registration.pairing is not None:
            self._codes.pop(registration.pairing[1], None)
        registration.pairing = (normal_phone(phone), code)
        self._codes[code] = registration
        await link.send(frame("pairing_code", code=code))

    async def scan(self, phone: str, qr: str, owner: str | None = None) -> Device:
        """The phone scans a QR code shown by a connection waiting to be linked; with ``owner``, only a connection
        of that owner's (another's is as unknown)."""
        registration = self._qr.get(qr)
        if registration is None or registration.done.is_set() or not owns(owner, registration.owner):
            raise SimError(404, "no connection shows this QR code (expired, rotated or already used)")
        self._check_phone(phone, owner)
        return await self._pair(registration, phone)

    async def pair_with_code(self, phone: str, code: str, owner: str | None = None) -> Device:
        registration = self._codes.get(code.strip().upper())
        if (
            registration is None
            or registration.pairing is None
            or registration.pairing[0] != normal_phone(phone)
            or not owns(owner, registration.owner)
        ):
            raise SimError(404, "no connection waits for this pairing code and phone number")
        self._check_phone(phone, owner)
        self._codes.pop(registration.pairing[1], None)
        return await self._pair(registration, phone)

    def _check_phone(self, phone: str, owner: str | None) -> None:
        """An owner cannot link a phone that is linked to another owner's connection: that would log it out."""
        previous = self.devices.get(normal_phone(phone))
        if previous is not None and not previous.logged_out and not owns(owner, previous.owner):
            raise SimError(409, "this phone number is linked to another account's device; use another number")

    async def _pair(self, registration: Registration, phone: str) -> Device:
        phone = normal_phone(phone)
        digits = phone_digits(phone)
        previous = self.devices.get(phone)
        if previous is not None:  # the phone keeps one companion here: a new link replaces the old one
            await self._log_out(previous, "replaced_by_new_link")
        index = int(previous.device_id.split(":")[1]) + 1 if previous else 1
        device = Device(
            phone=phone,
            device_id=f"{digits}:{index}",
            secret=secrets.token_hex(32),
            push_name=f"Sim {digits[-4:]}",
            owner=registration.owner,
        )
        self.devices[phone] = device
        self._by_id[device.device_id] = device
        registration.done.set()
        for code in registration.codes:
            self._qr.pop(code, None)
        link = registration.link
        link.device = device
        self._changed()
        await link.send(frame("paired", device={"id": device.device_id, "secret": device.secret}, me=me_of(device)))
        return device

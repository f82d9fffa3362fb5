"""The fake WhatsApp service: pairing by QR or code, one live connection per device, ratcheted delivery, faults.

Transport-neutral: a :class:`Link` wraps whatever carries the JSON frames (the WebSocket route in ``app.py``). The
simulator's state is :class:`~wagate.engines.sim.core.SimCore`'s; linking a device is
:mod:`~wagate.engines.sim.pairing`'s, the messages it receives :mod:`~wagate.engines.sim.traffic`'s; here is what a
connection says and what the control API does to a device.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from wagate.domain.phones import PHONE, user_jid
from wagate.engines.sim.link import (
    CLOSE_BANNED,
    CLOSE_DROPPED,
    CLOSE_LOGGED_OUT,
    CLOSE_NORMAL,
    CLOSE_QR_TIMEOUT,
    CLOSE_REPLACED,
    CLOSE_TRY_LATER,
    Link,
    LinkClosed,
    Registration,
    SimError,
    SimOptions,
    me_of,
    owns,
)
from wagate.engines.sim.pairing import Pairing
from wagate.engines.sim.protocol import frame
from wagate.engines.sim.state import Device
from wagate.engines.sim.traffic import Traffic

__all__ = [
    "CLOSE_BANNED",
    "CLOSE_DROPPED",
    "CLOSE_LOGGED_OUT",
    "CLOSE_NORMAL",
    "CLOSE_QR_TIMEOUT",
    "CLOSE_REPLACED",
    "CLOSE_TRY_LATER",
    "MESSAGE_ID",
    "Link",
    "LinkClosed",
    "SimError",
    "SimOptions",
    "SimServer",
]

MESSAGE_ID = re.compile(r"^[A-Z0-9]{8,64}$")


class SimServer(Pairing, Traffic):
    """State and behaviour of the simulator, independent of HTTP."""

    # connections -----------------------------------------------------------------------------------------------

    async def run_link(self, link: Link, receive: Callable[[], Awaitable[str]]) -> None:
        """One device socket from its hello to its end, whatever serves it (``receive`` raises ``LinkClosed``)."""
        try:
            hello = json.loads(await asyncio.wait_for(receive(), 10))
            await self.on_hello(link, hello)
            while not link.closed:
                message = json.loads(await receive())
                if isinstance(message, dict):
                    await self.on_frame(link, message)
        except (LinkClosed, TimeoutError, json.JSONDecodeError):
            pass
        finally:
            self.on_closed(link)

    async def on_hello(self, link: Link, hello: dict[str, Any]) -> None:
        client = hello.get("client")
        link.client = client if isinstance(client, dict) else None
        credentials = hello.get("device")
        if isinstance(credentials, dict):
            await self._login(link, str(credentials.get("id", "")), str(credentials.get("secret", "")))
        else:
            owner = hello.get("owner")
            registration = Registration(link, owner if isinstance(owner, str) and owner else None)
            link.registration = registration
            link.spawn(self._rotate_qr(registration), "sim-qr")

    async def on_frame(self, link: Link, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ack" and link.logged_in:
            self._settle(link, message.get("ids", []), failed=False)
        elif kind == "retry" and link.logged_in:
            self._settle(link, message.get("ids", []), failed=True)
        elif kind == "paired_ack" and link.device is not None and not link.logged_in:
            link.registration = None
            await self._go_live(link, link.device)
        elif kind == "pair_phone" and link.registration is not None:
            await self._issue_pairing_code(link, str(message.get("phone", "")))
        elif kind == "send" and link.logged_in and link.device is not None:
            await self._accept_outbound(link, link.device, message)
        elif kind == "receipt_ack" and link.logged_in and link.device is not None:
            self._settle_receipts(link.device, message.get("keys", []))
        elif kind == "sent_query" and link.logged_in and link.device is not None:
            await self._answer_sent_query(link, link.device, message)
        elif kind == "reset_contact" and link.logged_in and link.device is not None:
            await self.reset_contact(link, link.device, str(message.get("contact", "")))
        elif kind == "logout" and link.device is not None:
            await self._log_out(link.device, "user_request")
        else:
            await link.send(frame("error", code="unexpected", detail=f"unexpected frame {kind!r}"))

    def on_closed(self, link: Link) -> None:
        link.closed = True
        link.wake.set()
        for task in list(link.tasks):
            task.cancel()
        if link.device is not None and self._links.get(link.device.device_id) is link:
            del self._links[link.device.device_id]
        if link.registration is not None:
            link.registration.done.set()

    async def _login(self, link: Link, device_id: str, secret: str) -> None:
        device = self._by_id.get(device_id)
        now = self._clock()
        if device is None or not hmac.compare_digest(device.secret, secret):
            await link.send(frame("logged_out", reason="unknown_device"))
            await link.close(CLOSE_LOGGED_OUT, "unknown device")
            return
        self._changed()
        if device.slow_until > now:
            await asyncio.sleep(device.slow_delay)
        if device.refuse_until > now:
            device.log_attempt(now, "refused")
            await link.send(frame("error", code="unavailable", retry_after=device.refuse_until - now))
            await link.close(CLOSE_TRY_LATER, "unavailable")
        elif device.logged_out:
            device.log_attempt(now, "logged_out")
            await link.send(frame("logged_out", reason="device_removed"))
            await link.close(CLOSE_LOGGED_OUT, "logged out")
        elif device.banned_until > now:
            device.log_attempt(now, "banned")
            await link.send(frame("banned", until=device.banned_until))
            await link.close(CLOSE_BANNED, "banned")
        else:
            device.log_attempt(now, "ok")
            await self._go_live(link, device)

    async def _go_live(self, link: Link, device: Device) -> None:
        old = self._links.get(device.device_id)
        if old is not None and old is not link:
            device.replaced_total += 1
            await old.send(frame("replaced"))
            await old.close(CLOSE_REPLACED, "replaced")
        link.device = device
        link.logged_in = True
        link.unsent.extend(device.queue)  # at each connection everything queued goes (again), in order
        self._links[device.device_id] = link
        device.connections_total += 1
        self._changed()
        await link.send(frame("connected", me=me_of(device)))
        # What the phone syncs to a companion at login: the address book, the groups, receipts kept for it.
        await link.send(frame("contacts", items=[{"id": j, "name": n} for j, n in device.contacts.items()]))
        await link.send(frame("groups", items=[{"id": j, **g} for j, g in device.groups.items()]))
        if device.receipts:
            await link.send(frame("receipts", items=device.receipts))
        link.spawn(self._deliver(link, device), "sim-deliver")

    # outbound -------------------------------------------------------------------------------------------------------

    async def _accept_outbound(self, link: Link, device: Device, message: dict[str, Any]) -> None:
        """The server takes a message from the device (it deduplicates nothing: a message sent twice is recorded
        twice) and the recipient's phone, online, sends a delivery receipt back."""
        ref = message.get("ref")
        to = str(message.get("to", ""))
        given = message.get("id")
        message_id = str(given) if isinstance(given, str) else ""
        problem = _recipient_problem(device, to) or _content_problem(message) or _reaction_problem(device, message)
        if not MESSAGE_ID.fullmatch(message_id):
            problem = "a message id is 8-64 of A-Z and 0-9"
        if problem is not None:
            await link.send(frame("send_error", ref=ref, reason=problem))
            return
        record = {
            "id": message_id,
            "ref": ref,
            "to": to,
            "text": message.get("text"),
            "reply_to": message.get("reply_to"),
            "media": message.get("media"),
            "location": message.get("location"),
            "contacts": message.get("contacts"),
            "poll": message.get("poll"),
            "reaction": message.get("reaction"),
            "ts": self._clock(),
        }
        device.record_sent(record)
        self._changed()
        await link.send(frame("sent", ref=ref, id=message_id, ts=record["ts"]))
        await self._receipt(device, [message_id], "delivered")

    async def _receipt(self, device: Device, ids: list[str], status: str) -> None:
        items = [{"id": i, "status": status, "ts": self._clock()} for i in ids]
        device.receipts.extend(items)
        self._changed()
        link = self._links.get(device.device_id)
        if link is not None:
            await link.send(frame("receipts", items=items))

    def _settle_receipts(self, device: Device, keys: list[Any]) -> None:
        done = {str(k) for k in keys}
        device.receipts = [r for r in device.receipts if f"{r['id']}:{r['status']}" not in done]
        self._changed()

    async def _answer_sent_query(self, link: Link, device: Device, message: dict[str, Any]) -> None:
        wanted = {str(i) for i in message.get("ids", [])}
        known = {r["id"]: r["ts"] for r in device.sent if r["id"] in wanted}
        await link.send(frame("sent_known", ref=message.get("ref"), items=known))

    async def read(self, phone: str, ids: list[str]) -> int:
        """The recipients read messages the device sent: read receipts for those of ``ids`` it sent."""
        device = self.device(phone)
        sent = {r["id"] for r in device.sent}
        unknown = [i for i in ids if i not in sent]
        if unknown:
            raise SimError(404, f"the device sent no message {unknown[0]!r}")
        await self._receipt(device, ids, "read")
        return len(ids)

    async def add_contacts(self, phone: str, contacts: dict[str, str]) -> None:
        """Names saved in the phone's address book, synced to the linked device."""
        device = self.device(phone)
        named = {user_jid(p): name for p, name in contacts.items()}
        device.contacts.update(named)
        self._changed()
        link = self._links.get(device.device_id)
        if link is not None:
            await link.send(frame("contacts", items=[{"id": j, "name": n} for j, n in named.items()]))

    async def add_group(self, phone: str, subject: str, participants: list[str]) -> str:
        device = self.device(phone)
        jid = f"120363{secrets.randbelow(10**12):012d}@g.us"
        members = [user_jid(device.phone), *(user_jid(p) for p in participants)]
        device.groups[jid] = {"subject": subject, "participants": members}
        self._changed()
        link = self._links.get(device.device_id)
        if link is not None:
            await link.send(frame("groups", items=[{"id": jid, **device.groups[jid]}]))
        return jid

    # faults ----------------------------------------------------------------------------------------------------

    async def fault(
        self, phone: str, kind: str, *, duration: float, delay: float, sender: str | None, count: int
    ) -> None:
        device = self.device(phone)
        now = self._clock()
        link = self._links.get(device.device_id)
        if kind == "drop":
            if link is not None:
                await link.close(CLOSE_DROPPED, "dropped")
        elif kind == "refuse":
            device.refuse_until = now + duration
            if link is not None:
                await link.close(CLOSE_DROPPED, "dropped")
        elif kind == "logout":
            await self._log_out(device, "phone_logout")
        elif kind == "ban":
            device.banned_until = now + duration
            if link is not None:
                await link.send(frame("banned", until=device.banned_until))
                await link.close(CLOSE_BANNED, "banned")
        elif kind == "slow":
            device.slow_until = now + duration
            device.slow_delay = delay
        elif kind == "bad_mac":
            self.add_bad_mac(phone, sender, count)
        else:
            raise SimError(422, f"unknown fault {kind!r}")
        self._changed()

    def totals(self, owner: str | None) -> dict[str, int]:
        """Counts over the devices ``owner`` may see (every device for None), for checks across thousands."""
        mine = [d for d in self.devices.values() if owns(owner, d.owner)]
        return {
            "devices": len(mine),
            "connected": sum(d.device_id in self._links for d in mine),
            "connections_total": sum(d.connections_total for d in mine),
            "replaced": sum(d.replaced_total for d in mine),
        }

    def describe(self, phone: str) -> dict[str, Any]:
        device = self.device(phone)
        return {
            "phone": device.phone,
            "device_id": device.device_id,
            "paired": not device.logged_out,
            "connected": device.device_id in self._links,
            # What the live connection said of itself: its device name and the proxy it was given.
            "client": link.client if (link := self._links.get(device.device_id)) is not None else None,
            "connections_total": device.connections_total,
            # Live connections ended by a newer one: each is a moment when two clients held the device.
            "replaced": device.replaced_total,
            "connection_attempts": device.connection_attempts,
            "attempts": device.attempt_log,
            "decrypt_failures": device.decrypt_failures,
            "messages_queued": device.messages_queued,
            "messages_delivered": device.messages_delivered,
            "deliveries_total": device.deliveries_total,
            "messages_acked": device.messages_acked,
            "contact_resets": device.contact_resets,
            "pending": len(device.queue),
            "sent": device.sent_total,
            "receipts_pending": len(device.receipts),
            "contacts": len(device.contacts),
            "groups": len(device.groups),
        }


def _recipient_problem(device: Device, to: str) -> str | None:
    if to.endswith("@g.us"):
        return None if to in device.groups else f"the device is in no group {to!r}"
    user, _, server = to.partition("@")
    if server != "s.whatsapp.net" or not PHONE.fullmatch(user):
        return f"{to!r} is not a WhatsApp user"
    return None


def _content_problem(message: dict[str, Any]) -> str | None:
    """What WhatsApp's server refuses of a message's content: a poll of fewer than 2 or more than 12 options or
    with two the same, a place off the globe, a contact card that is not a vCard."""
    poll, place, contacts = message.get("poll"), message.get("location"), message.get("contacts")
    if isinstance(poll, dict):
        options = poll.get("options")
        if not isinstance(options, list) or not 2 <= len(options) <= 12 or len(set(map(str, options))) != len(options):
            return "a poll has 2 to 12 different options"
    if isinstance(place, dict):
        latitude, longitude = place.get("latitude"), place.get("longitude")
        if not isinstance(latitude, int | float) or not isinstance(longitude, int | float):
            return "a location has a latitude and a longitude"
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            return "a location's latitude is within ±90 and its longitude within ±180"
    if isinstance(contacts, list):
        for card in contacts:
            vcard = str(card.get("vcard", "")) if isinstance(card, dict) else ""
            if not vcard.upper().startswith("BEGIN:VCARD") or not vcard.upper().rstrip().endswith("END:VCARD"):
                return "a contact card is a vCard (BEGIN:VCARD ... END:VCARD)"
    return None


def _reaction_problem(device: Device, message: dict[str, Any]) -> str | None:
    """WhatsApp keys a reaction to a message of the chat: one the device sent, or one it received."""
    reaction = message.get("reaction")
    if not isinstance(reaction, dict):
        return None
    target = str(reaction.get("id", ""))
    if not device.knows(target, sent=bool(reaction.get("fromMe"))):
        return f"there is no message {target!r} to react to"
    return None

"""The fake WhatsApp service: pairing by QR or code, one live connection per device, ratcheted delivery, faults.

Transport-neutral: a :class:`Link` wraps whatever carries the JSON frames (the WebSocket route in ``app.py``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wagate.clock import Clock
from wagate.domain.phones import PHONE, phone_digits, user_jid
from wagate.engines.sim.protocol import PAIRING_ALPHABET, frame, initial_chain, message_mac, step_chain
from wagate.engines.sim.state import Chain, Device, Queued, StateFile

log = logging.getLogger("wagate.sim")

# WebSocket close codes the engine understands.
CLOSE_NORMAL = 1000
CLOSE_DROPPED = 1011
CLOSE_TRY_LATER = 1013
CLOSE_REPLACED = 4409
CLOSE_LOGGED_OUT = 4401
CLOSE_BANNED = 4403
CLOSE_QR_TIMEOUT = 4408

MESSAGE_ID = re.compile(r"^[A-Z0-9]{8,64}$")


class LinkClosed(Exception):
    """Raised by a transport's ``receive`` once the device's socket is closed."""


class SimError(Exception):
    """A control request the simulator refuses; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str, code: str = "sim_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(slots=True)
class SimOptions:
    qr_first_ttl: float = 60.0
    qr_ttl: float = 20.0
    qr_count: int = 6  # 60 + 5 x 20 s, about WhatsApp's 160 s
    window: int = 256  # unacknowledged messages in flight per connection
    batch: int = 64  # messages per frame
    flush_interval: float = 0.5


class Link:
    """One live connection: sends frames, closes, and knows its device once logged in."""

    def __init__(self, send: Callable[[str], Awaitable[None]], close: Callable[[int, str], Awaitable[None]]) -> None:
        self._send = send
        self._close = close
        self._lock = asyncio.Lock()
        self.device: Device | None = None
        self.logged_in = False
        self.closed = False
        self.unsent: collections.deque[str] = collections.deque()  # ids queued for this connection, not yet sent
        self.inflight: set[str] = set()
        self.wake = asyncio.Event()
        self.registration: Registration | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def send(self, text: str) -> None:
        if self.closed:
            return
        async with self._lock:
            await self._send(text)

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        with contextlib.suppress(Exception):  # the peer may already be gone; closing is best effort
            await self._close(code, reason)

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


TICK = 0.001  # the trickle's finest step


@dataclass(slots=True)
class _Flow:
    phone: str
    sender: str
    text: str
    count: int
    over: float
    start: float  # loop time
    queued: int = 0


@dataclass(slots=True)
class Registration:
    link: Link
    owner: str | None = None  # the label the connection gave in its hello; the device it links gets it
    codes: list[str] = field(default_factory=list)
    pairing: tuple[str, str] | None = None  # (phone, code)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class SimServer:
    """State and behaviour of the simulator, independent of HTTP."""

    def __init__(self, options: SimOptions | None = None, state_path: Path | None = None, clock: Clock = time.time):
        self.options = options or SimOptions()
        self._state = StateFile(state_path)
        self._clock = clock
        self.devices: dict[str, Device] = {}
        self._by_id: dict[str, Device] = {}
        self._links: dict[str, Link] = {}
        self._qr: dict[str, Registration] = {}
        self._codes: dict[str, Registration] = {}
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None
        self._flows: list[_Flow] = []  # steady message sources (``trickle``), all fed by one ticking task
        self._ticker: asyncio.Task[None] | None = None

    # lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.devices = self._state.load()
        self._by_id = {d.device_id: d for d in self.devices.values()}
        self._flusher = asyncio.create_task(self._flush_loop(), name="sim-flush")
        log.info("simulator ready with %d device(s)", len(self.devices))

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for link in list(self._links.values()):
            await link.close(CLOSE_NORMAL, "server stopping")
        self._state.save(self._snapshot())

    async def _flush_loop(self) -> None:
        pause = self.options.flush_interval
        while True:
            await asyncio.sleep(pause)
            if not self._dirty:
                continue
            self._dirty = False
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._state.save, self._snapshot())
            except OSError:
                log.exception("could not save the simulator state")
                self._dirty = True
            # Large states take long to save: space the saves so they never eat more than ~5% of the loop.
            pause = max(self.options.flush_interval, 20 * (time.perf_counter() - started))

    def _snapshot(self) -> dict[str, dict[str, Any]]:
        # Saved from a thread: hand it copies, not the objects the loop keeps changing.
        return {p: d.to_json() for p, d in self.devices.items()}

    def _changed(self) -> None:
        self._dirty = True

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
        credentials = hello.get("device")
        if isinstance(credentials, dict):
            await self._login(link, str(credentials.get("id", "")), str(credentials.get("secret", "")))
        else:
            owner = hello.get("owner")
            registration = Registration(link, owner if isinstance(owner, str) and owner else None)
            link.registration = registration
            link.spawn(self._rotate_qr(registration))

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
            await old.send(frame("replaced"))
            await old.close(CLOSE_REPLACED, "replaced")
        link.device = device
        link.logged_in = True
        link.unsent.extend(device.queue)  # at each connection everything queued goes (again), in order
        self._links[device.device_id] = link
        device.connections_total += 1
        self._changed()
        await link.send(frame("connected", me=_me(device)))
        # What the phone syncs to a companion at login: the address book, the groups, receipts kept for it.
        await link.send(frame("contacts", items=[{"id": j, "name": n} for j, n in device.contacts.items()]))
        await link.send(frame("groups", items=[{"id": j, **g} for j, g in device.groups.items()]))
        if device.receipts:
            await link.send(frame("receipts", items=device.receipts))
        link.spawn(self._deliver(link, device))

    # pairing ---------------------------------------------------------------------------------------------------

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
        registration.pairing = (_normal_phone(phone), code)
        self._codes[code] = registration
        await link.send(frame("pairing_code", code=code))

    async def scan(self, phone: str, qr: str, owner: str | None = None) -> Device:
        """The phone scans a QR code shown by a connection waiting to be linked; with ``owner``, only a connection
        of that owner's (another's is as unknown)."""
        registration = self._qr.get(qr)
        if registration is None or registration.done.is_set() or not _owns(owner, registration.owner):
            raise SimError(404, "no connection shows this QR code (expired, rotated or already used)")
        self._check_phone(phone, owner)
        return await self._pair(registration, phone)

    async def pair_with_code(self, phone: str, code: str, owner: str | None = None) -> Device:
        registration = self._codes.get(code.strip().upper())
        if (
            registration is None
            or registration.pairing is None
            or registration.pairing[0] != _normal_phone(phone)
            or not _owns(owner, registration.owner)
        ):
            raise SimError(404, "no connection waits for this pairing code and phone number")
        self._check_phone(phone, owner)
        self._codes.pop(registration.pairing[1], None)
        return await self._pair(registration, phone)

    def _check_phone(self, phone: str, owner: str | None) -> None:
        """An owner cannot link a phone that is linked to another owner's connection: that would log it out."""
        previous = self.devices.get(_normal_phone(phone))
        if previous is not None and not previous.logged_out and not _owns(owner, previous.owner):
            raise SimError(409, "this phone number is linked to another account's device; use another number")

    async def _pair(self, registration: Registration, phone: str) -> Device:
        phone = _normal_phone(phone)
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
        await link.send(frame("paired", device={"id": device.device_id, "secret": device.secret}, me=_me(device)))
        return device

    # messages --------------------------------------------------------------------------------------------------

    def add_messages(
        self,
        phone: str,
        sender: str,
        text: str,
        count: int,
        group: str | None = None,
        media: dict[str, Any] | None = None,
    ) -> list[str]:
        device = self.device(phone)
        contact = user_jid(sender)
        if group is not None and group not in device.groups:
            raise SimError(404, f"the device is in no group {group!r}")
        chat_jid = group or contact
        chain = self._chain(device, contact)
        ids = []
        for index in range(count):
            body = text if count == 1 else f"{text} #{index + 1}"
            step = os.urandom(16)
            key = step_chain(bytes.fromhex(chain.key), step)
            chain.counter += 1
            chain.key = key.hex()
            message_id = "SIM" + secrets.token_hex(8).upper()
            mac = message_mac(key, message_id, chain.counter, body)
            self._enqueue(
                device, message_id, contact, chat_jid, chain.counter, step.hex(), mac, body, bad=False, media=media
            )
            ids.append(message_id)
        self._changed()
        self._wake(device)
        return ids

    def trickle(self, phone: str, sender: str, text: str, count: int, over: float) -> None:
        """Queue ``count`` messages evenly over ``over`` seconds (a steady traffic source), in the background: the
        n-th is queued at ``n * over / count`` seconds, give or take a tick (one task serves every source, so that
        thousands of messages a second cost a thousand wake-ups, not one each)."""
        self.device(phone)  # unknown phone: the error now, not in the background
        self._flows.append(_Flow(phone, sender, text, count, over, asyncio.get_running_loop().time()))
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick(), name="sim-trickle")

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._flows:
            now = loop.time()
            soonest = now + 1.0
            for flow in list(self._flows):
                due = (
                    flow.count
                    if flow.over <= 0
                    else min(flow.count, int((now - flow.start) * flow.count / flow.over) + 1)
                )
                try:
                    while flow.queued < due:
                        flow.queued += 1
                        self.add_messages(flow.phone, flow.sender, f"{flow.text} #{flow.queued}", 1)
                except SimError:  # the device went away meanwhile
                    flow.queued = flow.count
                if flow.queued >= flow.count:
                    self._flows.remove(flow)
                else:
                    soonest = min(soonest, flow.start + flow.over * flow.queued / flow.count)
            await asyncio.sleep(max(soonest - loop.time(), TICK))

    def add_bad_mac(self, phone: str, sender: str | None, count: int) -> int:
        """Messages whose MAC cannot verify: from one contact, or spread over many for a device-wide storm."""
        device = self.device(phone)
        contacts = (
            [user_jid(sender)] if sender else [f"1999{n:07d}@s.whatsapp.net" for n in range(max(3, min(count, 20)))]
        )
        for index in range(count):
            contact = contacts[index % len(contacts)]
            chain = self._chain(device, contact)
            message_id = "BAD" + secrets.token_hex(8).upper()
            self._enqueue(
                device, message_id, contact, contact, chain.counter + 1, os.urandom(16).hex(), "0" * 32, "?", bad=True
            )
        self._changed()
        self._wake(device)
        return count

    async def reset_contact(self, link: Link, device: Device, contact: str) -> None:
        """The client dropped its session with ``contact`` (repeated failures, a damaged record): start the chain
        over and encrypt again under it everything still queued from the contact, also what is in flight on this
        connection, which goes again (WhatsApp's retry receipts have the sender re-establish and send again).

        The ``contact_reset`` frame that answers divides the connection's stream: the contact's messages before it
        are under the old chain (the client, which stopped answering them when it asked, ignores them), those after
        it under the new one. Nothing here yields before the frame is queued, so no message re-encrypted here can
        overtake it, nor an old one follow it.
        """
        chain = device.chains[contact] = Chain(0, initial_chain(bytes.fromhex(device.secret), contact).hex())
        again: list[str] = []
        for queued in device.queue.values():
            if queued.sender != contact:
                continue
            if queued.id in link.inflight:
                link.inflight.discard(queued.id)
                again.append(queued.id)
            if queued.bad:
                continue  # a bad one stays bad: it fails at the client under any chain
            step = os.urandom(16)
            key = step_chain(bytes.fromhex(chain.key), step)
            chain.counter += 1
            chain.key = key.hex()
            queued.counter, queued.step = chain.counter, step.hex()
            queued.mac = message_mac(key, queued.id, chain.counter, queued.text)
        link.unsent.extendleft(reversed(again))  # ahead of the contact's unsent ones: the counters' order
        device.contact_resets += 1
        self._changed()
        await link.send(frame("contact_reset", contact=contact))
        link.wake.set()

    def _chain(self, device: Device, contact: str) -> Chain:
        chain = device.chains.get(contact)
        if chain is None:
            chain = Chain(0, initial_chain(bytes.fromhex(device.secret), contact).hex())
            device.chains[contact] = chain
        return chain

    def _enqueue(
        self,
        device: Device,
        message_id: str,
        sender: str,
        chat: str,
        counter: int,
        step: str,
        mac: str,
        text: str,
        *,
        bad: bool,
        media: dict[str, Any] | None = None,
    ) -> None:
        device.queue[message_id] = Queued(
            device.next_seq, message_id, sender, chat, counter, step, mac, text, self._clock(), bad=bad, media=media
        )
        device.next_seq += 1
        device.messages_queued += 1
        link = self._links.get(device.device_id)
        if link is not None:
            link.unsent.append(message_id)

    def _wake(self, device: Device) -> None:
        link = self._links.get(device.device_id)
        if link is not None:
            link.wake.set()

    async def _deliver(self, link: Link, device: Device) -> None:
        """Send queued messages in order, keeping at most ``window`` unacknowledged on this connection."""
        while not link.closed:
            link.wake.clear()
            room = min(self.options.window - len(link.inflight), self.options.batch)
            batch: list[Queued] = []
            while room > len(batch) and link.unsent:
                queued = device.queue.get(link.unsent.popleft())
                if queued is not None and queued.id not in link.inflight:  # else settled or dropped meanwhile
                    batch.append(queued)
            if not batch:
                await link.wake.wait()
                continue
            for queued in batch:
                if queued.delivered == 0:
                    device.messages_delivered += 1
                queued.delivered += 1
                device.deliveries_total += 1
                link.inflight.add(queued.id)
            self._changed()
            await link.send(frame("messages", items=[_wire(q, device) for q in batch]))

    def _settle(self, link: Link, ids: list[Any], *, failed: bool) -> None:
        device = link.device
        assert device is not None
        wanted = {str(i) for i in ids}
        queue = device.queue
        settled = sum(queue.pop(i, None) is not None for i in wanted)
        if failed:
            device.decrypt_failures += settled
        else:
            device.messages_acked += settled
        link.inflight -= wanted
        self._changed()
        link.wake.set()

    async def _accept_outbound(self, link: Link, device: Device, message: dict[str, Any]) -> None:
        """The server takes a message from the device (it deduplicates nothing: a message sent twice is recorded
        twice) and the recipient's phone, online, sends a delivery receipt back."""
        ref = message.get("ref")
        to = str(message.get("to", ""))
        given = message.get("id")
        message_id = str(given) if isinstance(given, str) else ""
        problem = _recipient_problem(device, to)
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

    async def _log_out(self, device: Device, reason: str) -> None:
        device.logged_out = True
        device.queue.clear()
        self._changed()
        link = self._links.get(device.device_id)
        if link is not None:
            await link.send(frame("logged_out", reason=reason))
            await link.close(CLOSE_LOGGED_OUT, "logged out")

    # inspection ------------------------------------------------------------------------------------------------

    def device(self, phone: str, owner: str | None = None) -> Device:
        """The device of ``phone``; with ``owner``, only one of that owner's (another's is as unknown)."""
        try:
            device = self.devices.get(_normal_phone(phone))
        except ValueError as exc:
            raise SimError(422, str(exc)) from None
        if device is None or not _owns(owner, device.owner):
            raise SimError(404, "no device is linked to this phone")
        return device

    def describe(self, phone: str) -> dict[str, Any]:
        device = self.device(phone)
        return {
            "phone": device.phone,
            "device_id": device.device_id,
            "paired": not device.logged_out,
            "connected": device.device_id in self._links,
            "connections_total": device.connections_total,
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


def _owns(caller: str | None, owner: str | None) -> bool:
    """Whether a caller limited to ``caller`` (None: not limited) may act on what ``owner`` linked."""
    return caller is None or caller == owner


def _normal_phone(phone: str) -> str:
    return "+" + phone_digits(phone)


def _me(device: Device) -> dict[str, Any]:
    digits = phone_digits(device.phone)
    return {
        "id": f"{device.device_id}@s.whatsapp.net",
        "phone": device.phone,
        "pushName": device.push_name,
        "user": digits,
    }


def _recipient_problem(device: Device, to: str) -> str | None:
    if to.endswith("@g.us"):
        return None if to in device.groups else f"the device is in no group {to!r}"
    user, _, server = to.partition("@")
    if server != "s.whatsapp.net" or not PHONE.fullmatch(user):
        return f"{to!r} is not a WhatsApp user"
    return None


def _wire(queued: Queued, device: Device) -> dict[str, Any]:
    digits = queued.sender.partition("@")[0]
    wire = {
        "id": queued.id,
        "from": queued.sender,
        "chat": queued.chat,
        "counter": queued.counter,
        "step": queued.step,
        "mac": queued.mac,
        "text": queued.text,
        "ts": queued.ts,
        "pushName": device.contacts.get(queued.sender) or f"User {digits[-4:]}",
    }
    if queued.media is not None:
        wire["media"] = queued.media
    return wire

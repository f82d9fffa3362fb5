"""Messages to a device: queued under the contact's ratchet (one at a time, steadily, or as faults), sent over its
connection in order within a window, settled by its acknowledgements."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from wagate.domain.phones import user_jid
from wagate.engines.sim.core import Flow, SimCore
from wagate.engines.sim.link import Link, SimError
from wagate.engines.sim.protocol import frame, initial_chain, message_mac, step_chain
from wagate.engines.sim.state import Chain, Device, Queued

__all__ = ["TICK", "Traffic"]

TICK = 0.001  # the trickle's finest step


class Traffic(SimCore):
    """The simulator's inbound traffic: what it queues for a device and how it delivers it."""

    def add_messages(
        self,
        phone: str,
        sender: str,
        text: str,
        count: int,
        group: str | None = None,
        media: dict[str, Any] | None = None,
        content: dict[str, Any] | None = None,
        from_me: bool = False,
    ) -> list[str]:
        """Messages ``sender`` writes to the device's account; with ``from_me``, messages the account's own phone
        writes in the chat with ``sender`` (or in ``group``), which WhatsApp hands its linked devices too."""
        device = self.device(phone)
        if group is not None and group not in device.groups:
            raise SimError(404, f"the device is in no group {group!r}")
        chat_jid = group or user_jid(sender)
        contact = user_jid(device.phone) if from_me else user_jid(sender)
        if from_me:
            content = {**(content or {}), "fromMe": True}
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
                device,
                message_id,
                contact,
                chat_jid,
                chain.counter,
                step.hex(),
                mac,
                body,
                bad=False,
                media=media,
                content=content,
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
        self._flows.append(Flow(phone, sender, text, count, over, asyncio.get_running_loop().time()))
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
        content: dict[str, Any] | None = None,
    ) -> None:
        device.queue[message_id] = Queued(
            device.next_seq,
            message_id,
            sender,
            chat,
            counter,
            step,
            mac,
            text,
            self._clock(),
            bad=bad,
            media=media,
            content=content,
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
        taken = [i for i in wanted if queue.pop(i, None) is not None]
        settled = len(taken)
        if failed:
            device.decrypt_failures += settled
        else:
            device.messages_acked += settled
            device.record_received(taken)
        link.inflight -= wanted
        self._changed()
        link.wake.set()


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
    if queued.content is not None:
        wire.update(queued.content)
    return wire

"""The ``sim`` engine's inbound messages: each contact's ratchet (chain), verified, committed, then acknowledged.

A batch of messages is verified against the chains in memory (loaded from the vault on first use), handed to the
supervisor together with the chains it advanced (one transaction), and only then acknowledged to the simulator. A
contact whose chain is damaged, or that the supervisor resets, starts over: the simulator is asked to, and the
contact's messages are ignored until it answers (they come again under the new chain).
"""

from __future__ import annotations

import contextlib
import hmac
from typing import Any

from wagate.domain.content import ContactCard, Contacts, Location, Poll
from wagate.engines.base import ContactStateDamaged, DecryptFailed, EngineContext, EngineEvent, MessageReceived
from wagate.engines.sim.protocol import decode_chain, encode_chain, frame, initial_chain, message_mac, step_chain
from wagate.engines.sim.wire import SocketClosed, WireSocket
from wagate.errors import DamagedRecord

__all__ = ["CHAIN_NS", "InboundChains", "shared_content"]

CHAIN_NS = "chain"


class InboundChains:
    """A connection's chains with its contacts and the batches of messages checked against them; the connection
    (:class:`~wagate.engines.sim.engine.SimConnection`) opens the socket they come on."""

    def __init__(self, ctx: EngineContext) -> None:
        self._ctx = ctx
        self._ws: WireSocket | None = None
        self._secret: bytes | None = None
        self._chains: dict[str, tuple[int, bytes]] = {}
        self._resets: set[str] = set()  # contacts to reset once the batch in hand is done
        # Contacts reset and not yet answered (``contact_reset``), with how many answers are due: their messages
        # until then are under the old chain and come again under the new one.
        self._awaiting: dict[str, int] = {}
        self._in_batch = False

    async def _chain_states(self, contacts: set[str]) -> None:
        missing = [c for c in contacts if c not in self._chains and c not in self._awaiting]
        if not missing:
            return
        assert self._secret is not None
        try:
            stored = await self._ctx.auth.get_many(CHAIN_NS, missing)
        except DamagedRecord as exc:
            stored = exc.readable
            for contact in exc.keys:
                missing.remove(contact)
                await self._damaged_chain(contact)
        for contact in missing:
            raw = stored.get(contact)
            self._chains[contact] = decode_chain(raw) if raw else (0, initial_chain(self._secret, contact))

    async def _damaged_chain(self, contact: str) -> None:
        """A contact's stored chain no longer opens: what a Bad MAC burst leads to, at once. The record goes, the
        contact's session starts over (its messages come again under the new chain) and the supervisor hears of it;
        the connection and every other contact go on."""
        await self._ctx.auth.delete_many(CHAIN_NS, [contact])
        await self._send_reset(contact)
        await self._ctx.emit(ContactStateDamaged(contact))

    async def reset_contact(self, contact: str) -> None:
        """Forget the chain with ``contact`` here and at the simulator. Inside a batch (the supervisor reacts to a
        failure while the batch is handled) the reset waits for the batch's end, so that the batch's own chain
        writes cannot undo it."""
        self._resets.add(contact)
        if not self._in_batch:
            await self._apply_resets()

    async def _apply_resets(self) -> None:
        contacts, self._resets = sorted(self._resets), set()
        if not contacts or self._ws is None:
            return
        await self._ctx.auth.delete_many(CHAIN_NS, contacts)
        for contact in contacts:
            await self._send_reset(contact)

    async def _send_reset(self, contact: str) -> None:
        """Ask the simulator to start the chain with ``contact`` over; its messages are ignored until it answers."""
        self._chains.pop(contact, None)
        if self._ws is None:
            return
        self._awaiting[contact] = self._awaiting.get(contact, 0) + 1
        with contextlib.suppress(SocketClosed):
            await self._ws.send(frame("reset_contact", contact=contact))

    def _on_contact_reset(self, contact: str) -> None:
        """The simulator started the chain over: what follows from the contact is under the new chain."""
        left = self._awaiting.get(contact, 0) - 1
        if left > 0:
            self._awaiting[contact] = left
            return
        self._awaiting.pop(contact, None)
        assert self._secret is not None
        self._chains[contact] = (0, initial_chain(self._secret, contact))

    async def _on_messages(self, items: list[dict[str, Any]]) -> None:
        self._in_batch = True
        try:
            await self._handle_batch(items)
        finally:
            self._in_batch = False
        await self._apply_resets()

    async def _handle_batch(self, items: list[dict[str, Any]]) -> None:
        await self._chain_states({str(item["from"]) for item in items})
        advanced: dict[str, tuple[int, bytes]] = {}
        events: list[EngineEvent] = []
        acks: list[str] = []
        retries: list[str] = []
        for item in items:
            contact, counter, message_id = str(item["from"]), int(item["counter"]), str(item["id"])
            if contact in self._awaiting:
                continue  # under a chain being replaced: it comes again after the simulator's contact_reset
            known, key = advanced.get(contact) or self._chains[contact]
            if counter <= known:
                acks.append(message_id)  # already processed before a lost ack: acknowledge again, nothing else
                continue
            candidate = step_chain(key, bytes.fromhex(item["step"]))
            expected = message_mac(candidate, message_id, counter, str(item["text"]))
            if counter == known + 1 and hmac.compare_digest(expected, str(item["mac"])):
                advanced[contact] = (counter, candidate)
                events.append(
                    MessageReceived(
                        message_id,
                        str(item["chat"]),
                        contact,
                        str(item["text"]),
                        float(item["ts"]),
                        push_name=item.get("pushName"),
                        media=item.get("media"),
                        content=shared_content(item),
                        from_me=bool(item.get("fromMe")),
                    )
                )
                acks.append(message_id)
            else:
                events.append(DecryptFailed(contact, message_id))
                retries.append(message_id)
        # The messages and the ratchets they advanced commit together, before the acknowledgement.
        await self._ctx.emit_many(events, {(CHAIN_NS, c): encode_chain(n, k) for c, (n, k) in advanced.items()})
        self._chains.update(advanced)
        assert self._ws is not None
        if acks:
            await self._ws.send(frame("ack", ids=acks))
        if retries:
            await self._ws.send(frame("retry", ids=retries))


def shared_content(item: dict[str, Any]) -> Location | Contacts | Poll | None:
    """A place, contact cards or a poll in a delivered message, as the simulator's wire carries them."""
    if isinstance(place := item.get("location"), dict):
        latitude, longitude = float(place["latitude"]), float(place["longitude"])
        return Location(latitude, longitude, place.get("name"), place.get("address"), bool(place.get("live")))
    if isinstance(cards := item.get("contacts"), list):
        return Contacts(tuple(ContactCard(str(c["name"]), str(c["vcard"])) for c in cards))
    if isinstance(poll := item.get("poll"), dict):
        return Poll(str(poll["name"]), tuple(str(o) for o in poll["options"]), bool(poll.get("multiple")))
    return None

"""Events committed by the other processes on one PostgreSQL database, for this process's WebSocket clients.

With several workers, a tenant's WebSocket client is connected to one of them while the tenant's sessions run on
any. A worker that knows others are alive announces the events it commits, in their transactions (a PostgreSQL
notification, sent at the commit and never for a rolled-back one); each process listens, reads the announced
events of the tenants it has clients for from the history, in order, and hands them to its bus. Webhooks need
none of this: their outbox is in the database for every worker.

A worker learns of the others at its reconcile (every ``WAGATE_RECONCILE_INTERVAL``), so one that has just started
would hear nothing from them until then: once it listens, it says hello (an announcement of no events), and a worker
that hears another process (a hello, or events) announces its own events from then on (``on_peer``). A worker that
changes a webhook endpoint (its URL, headers, secret...) says so too, and the others read it again before their next
delivery to it (``on_webhook``) instead of when their copy expires.

A revoked API key or a deleted tenant is announced by the store in the transaction that makes the change, and every
process closes the WebSocket streams that use it. A notice can still be missed (it was sent while this process's
listening connection was down), so each process also checks the keys of its open streams against the store after
every (re)listen and every ``recheck_interval`` seconds, and closes the streams whose key no longer works. On SQLite
(one process, nothing announced) the periodic check is all there is: it catches keys revoked by another tool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from wagate.domain.events import Announced, Committed
from wagate.errors import StoreError
from wagate.fanout.bus import LocalBus
from wagate.ids import WebhookId
from wagate.store.base import Store

__all__ = ["ALIVE_CHECK", "RECHECK_INTERVAL", "RELISTEN_PAUSE", "PeerEvents"]

log = logging.getLogger("wagate.events")

RELISTEN_PAUSE = 2.0  # seconds before listening again after the connection was lost
ALIVE_CHECK = 5.0  # seconds between looks at the listening connection while nothing is heard
RECHECK_INTERVAL = 30.0  # seconds between checks of the open streams' keys against the store


class PeerEvents:
    def __init__(
        self,
        store: Store,
        bus: LocalBus,
        process: str,
        on_peer: Callable[[str], None] | None = None,
        on_webhook: Callable[[WebhookId], None] | None = None,
        *,
        recheck_interval: float = RECHECK_INTERVAL,
        relisten_pause: float = RELISTEN_PAUSE,
    ) -> None:
        self._store = store
        self._bus = bus
        self._process = process
        self._on_peer = on_peer  # another process is alive and listening (the supervisor starts announcing)
        self._on_webhook = on_webhook  # another process changed this endpoint (the dispatcher reads it again)
        self._recheck_interval = recheck_interval
        self._relisten_pause = relisten_pause
        self._heard: asyncio.Queue[list[int]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.listening = False  # the listening connection stands (metrics)
        self.relayed = 0  # other workers' events handed to this process's bus (metrics)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="peer-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _on_announced(self, announced: Announced) -> None:
        if announced.revoked_keys or announced.deleted_tenants:
            # Sent by the store with the commit, whoever revoked (this process too: revoking again changes nothing).
            self._bus.revoke(keys=announced.revoked_keys, tenants=announced.deleted_tenants)
            return
        if announced.process == self._process:
            return  # ours: the bus had them at our commit
        if self._on_peer is not None:
            self._on_peer(announced.process)
        if self._on_webhook is not None:
            for webhook_id in announced.webhooks:
                self._on_webhook(webhook_id)
        wanted = [seq for tenant, seqs in announced.seqs.items() if self._bus.listens_to(tenant) for seq in seqs]
        if wanted:
            self._heard.put_nowait(wanted)

    async def recheck(self) -> int:
        """Close the open streams whose API key no longer works (revoked, or its tenant deleted, and the notice
        missed); how many were closed."""
        keys = self._bus.key_ids()
        if not keys:
            return 0
        gone = keys - await self._store.api_keys.valid_among(keys)
        if not gone:
            return 0
        cut = self._bus.revoke(keys=gone)
        log.info("closed %d stream(s) of %d API key(s) found revoked", cut, len(gone))
        return cut

    async def _recheck_quietly(self) -> None:
        try:
            await self.recheck()
        except (StoreError, OSError) as exc:  # checked again at the next round
            log.warning("cannot check the open streams' API keys (%s); trying again later", exc)

    async def _run(self) -> None:
        while True:
            try:
                async with self._store.peers.listen(self._on_announced) as alive:
                    if alive is None:  # this database does not announce (SQLite: one process): only the checks
                        await self._check_forever()
                        return
                    await self._store.peers.tell_peers(self._process)  # hello: we listen now
                    self.listening = True
                    await self._relay(alive)
                log.warning("lost the connection that hears other workers' events; listening again")
            except (StoreError, OSError) as exc:
                log.warning("cannot hear other workers' events (%s); trying again", exc)
            except Exception:  # the listener must survive anything; it listens again
                log.exception("hearing other workers' events failed; trying again")
            finally:
                self.listening = False
            await asyncio.sleep(self._relisten_pause)

    async def _check_forever(self) -> None:
        while True:
            await self._recheck_quietly()
            await asyncio.sleep(self._recheck_interval)

    async def _relay(self, alive: Callable[[], bool]) -> None:
        """Hand the announced events to the bus while the listening connection stands, checking the open streams'
        keys at once (notices may have been missed while it was down) and every ``recheck_interval`` seconds."""
        loop = asyncio.get_running_loop()
        next_check = loop.time()
        while alive():
            if loop.time() >= next_check:
                await self._recheck_quietly()
                next_check = loop.time() + self._recheck_interval
            try:
                wait = min(ALIVE_CHECK, max(0.0, next_check - loop.time()))
                seqs = await asyncio.wait_for(self._heard.get(), wait)
            except TimeoutError:
                continue
            while not self._heard.empty():  # what came meanwhile, in one read
                seqs.extend(self._heard.get_nowait())
            events = await self._store.events.events_by_seq(seqs)
            self._bus.publish(Committed(events, []))
            self.relayed += len(events)

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
delivery to it (``on_webhook``) instead of when their copy expires. A worker that revokes an API key or deletes a
tenant says so as well (``tell_revoked``), and the others close the WebSocket streams that use them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from wagate.domain.events import Announced, Committed
from wagate.errors import StoreError
from wagate.fanout.bus import LocalBus
from wagate.ids import ApiKeyId, TenantId, WebhookId
from wagate.store.base import Store

log = logging.getLogger("wagate.events")

RELISTEN_PAUSE = 2.0  # seconds before listening again after the connection was lost
ALIVE_CHECK = 5.0  # seconds between looks at the listening connection while nothing is heard


class PeerEvents:
    def __init__(
        self,
        store: Store,
        bus: LocalBus,
        process: str,
        on_peer: Callable[[str], None] | None = None,
        on_webhook: Callable[[WebhookId], None] | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._process = process
        self._on_peer = on_peer  # another process is alive and listening (the supervisor starts announcing)
        self._on_webhook = on_webhook  # another process changed this endpoint (the dispatcher reads it again)
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

    async def tell_revoked(self, keys: Sequence[ApiKeyId] = (), tenants: Sequence[TenantId] = ()) -> None:
        """This process revoked these keys or deleted these tenants (and closed its own streams of them): the
        other workers close theirs."""
        try:
            await self._store.events.tell_peers(self._process, revoked_keys=keys, deleted_tenants=tenants)
        except StoreError as exc:  # the revocation is committed; the streams elsewhere stay open until they end
            log.warning("could not tell the other workers of a revoked key or deleted tenant: %s", exc)

    def _on_announced(self, announced: Announced) -> None:
        if announced.process == self._process:
            return  # ours: the bus had them at our commit
        if self._on_peer is not None:
            self._on_peer(announced.process)
        if self._on_webhook is not None:
            for webhook_id in announced.webhooks:
                self._on_webhook(webhook_id)
        if announced.revoked_keys or announced.deleted_tenants:
            self._bus.revoke(keys=announced.revoked_keys, tenants=announced.deleted_tenants)
        wanted = [seq for tenant, seqs in announced.seqs.items() if self._bus.listens_to(tenant) for seq in seqs]
        if wanted:
            self._heard.put_nowait(wanted)

    async def _run(self) -> None:
        while True:
            try:
                async with self._store.events.listen(self._on_announced) as alive:
                    if alive is None:
                        return  # this database does not announce (SQLite: one process)
                    await self._store.events.tell_peers(self._process)  # hello: we listen now
                    self.listening = True
                    while alive():
                        try:
                            seqs = await asyncio.wait_for(self._heard.get(), ALIVE_CHECK)
                        except TimeoutError:
                            continue
                        while not self._heard.empty():  # what came meanwhile, in one read
                            seqs.extend(self._heard.get_nowait())
                        events = await self._store.events.events_by_seq(seqs)
                        self._bus.publish(Committed(events, []))
                        self.relayed += len(events)
                log.warning("lost the connection that hears other workers' events; listening again")
            except (StoreError, OSError) as exc:
                log.warning("cannot hear other workers' events (%s); trying again", exc)
            except Exception:  # the listener must survive anything; it listens again
                log.exception("hearing other workers' events failed; trying again")
            finally:
                self.listening = False
            await asyncio.sleep(RELISTEN_PAUSE)

"""The gateway's long-lived parts, opened once per process and shared by the API and the CLI."""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import dataclass, field

from wagate import __version__
from wagate.clock import Clock, system_clock
from wagate.config import Settings
from wagate.crypto.keyring import Keyring, load_keyring
from wagate.crypto.sealer import KeyringSealer
from wagate.domain.sessions import Quotas
from wagate.domain.tenants import Tenant
from wagate.domain.waha import environment
from wagate.fanout.bus import LocalBus
from wagate.net.media import MediaFetcher
from wagate.store import open_store
from wagate.store.base import Store
from wagate.store.bodies import BodySealer
from wagate.store.vault import Vaults

__all__ = ["Gateway"]

log = logging.getLogger("wagate")


@dataclass(slots=True)
class Gateway:
    settings: Settings
    store: Store
    keyring: Keyring
    vaults: Vaults
    clock: Clock
    bus: LocalBus = field(default_factory=LocalBus)
    media: MediaFetcher = field(init=False)
    bodies: BodySealer = field(init=False)  # one per gateway: what it has reported damaged is its own

    def __post_init__(self) -> None:
        self.store.events.listeners.append(self.bus.publish)
        settings = self.settings
        platform_name = f"{sys.platform}/{platform.machine()}"
        self.store.events.set_environment(
            environment(__version__, settings.default_engine, platform_name, settings.worker_id)
        )
        self.bodies = BodySealer(self.vaults)
        self.media = MediaFetcher(
            max_bytes=self.settings.media_max_bytes,
            timeout=self.settings.media_fetch_timeout,
            allow_private=self.settings.webhook_allow_private,
            per_tenant=self.settings.media_fetch_per_tenant,
            wait=self.settings.media_fetch_wait,
        )

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        keyring: Keyring | None = None,
        schema: str | None = None,
        clock: Clock = system_clock,
    ) -> Gateway:
        keyring = keyring or load_keyring(settings)  # before the store: a missing key must stop start-up first
        store = await open_store(
            settings.resolved_database_url,
            schema=schema or settings.database_schema,
            pool_size=settings.db_pool_size,
            clock=clock,
            sealer=KeyringSealer(keyring),
        )
        log.info("store ready (%s), encryption key %s active", store.backend, keyring.active_id)
        # Concurrent sessions' auth writes share transactions (group commit), on SQLite and PostgreSQL alike.
        vaults = Vaults(store.auth, keyring, clock)
        return cls(settings, store, keyring, vaults, clock)

    async def close(self) -> None:
        await self.media.close()
        await self.store.close()

    def quotas_for(self, tenant: Tenant) -> Quotas:
        per_tenant = tenant.max_sessions if tenant.max_sessions is not None else self.settings.max_sessions_per_tenant
        return Quotas(per_tenant=per_tenant, total=self.settings.max_sessions_total)

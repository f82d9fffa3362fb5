"""What a session's runner, and its inbound and outbound paths, are handed: one frozen context, built once by the
supervisor, so that none of them reaches through the supervisor for what it needs (nor imports it).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Protocol

from wagate.clock import Clock
from wagate.config import Settings
from wagate.domain.sessions import Lease, Session
from wagate.gateway import Gateway
from wagate.ids import SessionId
from wagate.store.bodies import BodySealer
from wagate.store.contracts.backups import BackupStore
from wagate.store.contracts.directory import DirectoryStore
from wagate.store.contracts.messages import MessageStore
from wagate.store.vault import Vault, Vaults
from wagate.supervisor.corruption import CorruptionPolicy
from wagate.supervisor.notify import Notifier
from wagate.supervisor.recorder import StatusRecorder
from wagate.supervisor.stats import SessionStats

__all__ = ["OutboxHints", "RunnerContext", "RunnerSettings", "RunnerView"]


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """The runners' slice of the settings."""

    connect_timeout: float
    backoff_base: float
    backoff_cap: float
    breaker_threshold: int
    breaker_reset: float
    max_attempts: int
    qr_rounds: int
    send_rate: float
    send_burst: int
    send_max_attempts: int
    backup_interval: float
    backups_keep: int

    @classmethod
    def of(cls, settings: Settings) -> RunnerSettings:
        return cls(
            connect_timeout=settings.connect_timeout,
            backoff_base=settings.backoff_base,
            backoff_cap=settings.backoff_cap,
            breaker_threshold=settings.breaker_threshold,
            breaker_reset=settings.breaker_reset,
            max_attempts=settings.max_attempts,
            qr_rounds=settings.qr_rounds,
            send_rate=settings.send_rate,
            send_burst=settings.send_burst,
            send_max_attempts=settings.send_max_attempts,
            backup_interval=settings.backup_interval,
            backups_keep=settings.backups_keep,
        )


class OutboxHints:
    """Sessions known to have nothing queued to send, from one query when many start together: their senders skip
    the first look at the queue. An entry goes when used, or when something is queued through this worker; what
    another worker queues reaches the sender through the supervisor's poll, as always."""

    def __init__(self) -> None:
        self._empty: set[SessionId] = set()

    def known_empty(self, session_id: SessionId) -> bool:
        """True (once) when the session had nothing queued as it was started with many others."""
        if session_id in self._empty:
            self._empty.discard(session_id)
            return True
        return False

    def mark_empty(self, session_ids: set[SessionId]) -> None:
        self._empty.update(session_ids)

    def forget(self, session_id: SessionId) -> None:
        self._empty.discard(session_id)


class RunnerView(Protocol):
    """What the inbound and outbound paths see of the runner they serve."""

    @property
    def session(self) -> Session: ...

    @property
    def lease(self) -> Lease: ...

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    last_activity: float


@dataclass(frozen=True, slots=True)
class RunnerContext:
    """Everything the runners of one supervisor share: built once, handed to each (and to their senders)."""

    settings: RunnerSettings
    clock: Clock
    rng: random.Random
    owner: str  # this supervisor's lease owner: "<worker>#<boot>"
    vaults: Vaults
    bodies: BodySealer
    recorder: StatusRecorder
    messages: MessageStore
    directory: DirectoryStore
    backups: BackupStore
    notifier: Notifier
    connect_slots: asyncio.Semaphore  # connections being opened at once, across this worker's sessions
    corruption: CorruptionPolicy
    outbox: OutboxHints
    stats: SessionStats

    @classmethod
    def build(
        cls, gateway: Gateway, *, rng: random.Random, owner: str, stats: SessionStats | None = None
    ) -> RunnerContext:
        """The context of one supervisor (lease owner ``owner``) of this process; fresh stats unless given."""
        settings = gateway.settings
        return cls(
            settings=RunnerSettings.of(settings),
            clock=gateway.clock,
            rng=rng,
            owner=owner,
            vaults=gateway.vaults,
            bodies=gateway.bodies,  # one per gateway: what it reported damaged is its own
            recorder=StatusRecorder(gateway.store.sessions),
            messages=gateway.store.messages,
            directory=gateway.store.directory,
            backups=gateway.store.backups,
            notifier=Notifier(settings, gateway.store, gateway.clock),
            connect_slots=asyncio.Semaphore(settings.connect_concurrency),
            corruption=CorruptionPolicy(
                window=settings.corruption_window,
                session_failures=settings.corruption_threshold,
                min_contacts=settings.corruption_min_contacts,
                contact_failures=settings.contact_reset_threshold,
            ),
            outbox=OutboxHints(),
            stats=stats if stats is not None else SessionStats(),
        )

    def vault(self, session: Session, epoch: int) -> Vault:
        """The session's auth state, fenced by this supervisor's lease of it at ``epoch``."""
        return self.vaults.open(session.tenant_id, session.id, owner=self.owner, epoch=epoch)

"""Store interfaces, one small ABC per concern (as whatsmeow splits its store).

Every call that touches a tenant's data takes the tenant id, so no query can forget it. The few system-wide calls
(the supervisor's reconcile list, key rotation) say so in their names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from wagate.crypto.keyring import WrappedKey
from wagate.domain.events import Event
from wagate.domain.messages import Chat, Contact, Group, Message, MessageKind, MessageStatus
from wagate.domain.sessions import Desired, HistoryEntry, Quotas, Reason, Session, Status
from wagate.domain.tenants import ApiKey, Role, Tenant
from wagate.domain.webhooks import Headers
from wagate.errors import LeaseLost, StoreUnavailable
from wagate.ids import ApiKeyId, BackupId, EventId, SessionId, TenantId, WebhookId


class TenantStore(ABC):
    @abstractmethod
    async def create(self, name: str, *, contact_email: str | None, max_sessions: int | None) -> Tenant:
        """Raises ``AlreadyExists`` when the name is taken."""

    @abstractmethod
    async def get(self, tenant_id: TenantId) -> Tenant | None: ...

    @abstractmethod
    async def list_all(self) -> list[Tenant]: ...

    @abstractmethod
    async def update(self, tenant_id: TenantId, changes: dict[str, Any]) -> Tenant | None:
        """Change ``max_sessions``, ``message_retention_days`` or ``contact_email``; None when unknown."""

    @abstractmethod
    async def delete(self, tenant_id: TenantId) -> bool:
        """Delete a tenant with no sessions, and its keys. False when unknown."""


class ApiKeyStore(ABC):
    @abstractmethod
    async def create(
        self, *, tenant_id: TenantId | None, role: Role, name: str, key_hash: str, prefix: str
    ) -> ApiKey: ...

    @abstractmethod
    async def find_active(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash."""

    @abstractmethod
    async def list_keys(self, tenant_id: TenantId | None) -> list[ApiKey]:
        """Keys of one tenant, or every key (admin keys included) when ``tenant_id`` is None."""

    @abstractmethod
    async def revoke(self, key_id: ApiKeyId, *, tenant_id: TenantId | None) -> bool:
        """Revoke a key; restricted to one tenant's keys unless ``tenant_id`` is None."""

    @abstractmethod
    async def has_admin(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An observed status to record, by the lease holder (owner, epoch)."""

    tenant_id: TenantId
    session_id: SessionId
    owner: str
    epoch: int
    status: Status
    reason: Reason | None = None
    actor: str = "supervisor"
    me: dict[str, Any] | None = None
    clear_me: bool = False
    note: str | None = None
    detail: dict[str, Any] | None = None
    events: tuple[Event, ...] = ()  # committed with the change, and only if it applies


@dataclass(frozen=True, slots=True)
class NewSession:
    tenant_id: TenantId
    name: str
    engine: str
    config: dict[str, Any]
    desired: Desired


class SessionStore(ABC):
    @abstractmethod
    async def create(self, new: NewSession, *, quotas: Quotas, actor: str) -> Session:
        """Insert a session and its first history entry, enforcing quotas atomically.

        Raises ``AlreadyExists`` for a taken name, ``QuotaExceeded`` above a quota.
        """

    @abstractmethod
    async def get(self, tenant_id: TenantId, name: str) -> Session | None: ...

    @abstractmethod
    async def get_by_id(self, tenant_id: TenantId, session_id: SessionId) -> Session | None: ...

    @abstractmethod
    async def existing_all_tenants(self, session_ids: Sequence[str]) -> set[str]:
        """Which of these session ids still exist, whatever their tenant (a sweep of local leftovers)."""

    @abstractmethod
    async def list_sessions(self, tenant_id: TenantId) -> list[Session]: ...

    @abstractmethod
    async def count(self, tenant_id: TenantId | None) -> int:
        """Sessions of one tenant, or of the installation when ``tenant_id`` is None."""

    @abstractmethod
    async def count_by_status_all_tenants(self) -> dict[tuple[str, str], int]:
        """System-wide, for the server status: sessions by (status, desired)."""

    @abstractmethod
    async def set_desired(
        self, tenant_id: TenantId, name: str, desired: Desired, *, actor: str, restart: bool = False
    ) -> Session | None:
        """Record what the tenant wants; ``restart`` bumps the generation so a running session restarts."""

    @abstractmethod
    async def update_config(
        self, tenant_id: TenantId, name: str, config: dict[str, Any], *, actor: str
    ) -> Session | None:
        """Replace the config and bump the generation."""

    async def set_status_many(
        self, changes: Sequence[StatusChange], events: Sequence[Event] = (), inbound: Sequence[InboundMessage] = ()
    ) -> list[Session | None]:
        """Record observed statuses with their history entries and ``session.status`` events, plus ``events``, plus
        the ``inbound`` messages not stored before (with their events), in one transaction, in order.

        Each change is fenced: it applies only while (owner, epoch) holds the session's lease; the answer is None
        for a change that did not apply (lease lost, session gone). A change's ``events`` commit only with it.
        """
        applied, _ = await self.commit(changes, [Append(events, inbound)])
        return applied

    @abstractmethod
    async def commit(
        self, changes: Sequence[StatusChange], appends: Sequence[Append]
    ) -> tuple[list[Session | None], list[LeaseLost | None]]:
        """``set_status_many`` for many sessions' writes at once (the group commit of the supervisor): the changes
        as there, and each append whole or not at all, all in one transaction. An append with an ``auth`` write
        is fenced by it: ``LeaseLost`` in its place when the write's (owner, epoch) no longer holds the lease, and
        nothing of it is written."""

    @abstractmethod
    async def delete(self, tenant_id: TenantId, name: str) -> bool:
        """Delete a session with its history, keys, auth records, lease and backups."""

    @abstractmethod
    async def history(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, before: int | None = None
    ) -> list[HistoryEntry]:
        """Newest first; ``before`` pages back from an entry id."""

    @abstractmethod
    async def list_to_reconcile_all_tenants(self) -> list[Session]:
        """System-wide: sessions that should run and have not failed, and sessions that should stop but have not."""


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: SessionId
    owner: str | None
    epoch: int
    expires_at: float
    acquired_at: float = 0.0  # when its owner took it

    def live(self, now: float) -> bool:
        """Held by a worker that renews it (not released, not lapsed)."""
        return self.owner is not None and self.expires_at > now


class LeaseStore(ABC):
    """One lease row per session (made with the session): (owner, epoch, expiry)."""

    async def acquire(
        self, session_id: SessionId, owner: str, ttl: float, *, takeover: str | None = None
    ) -> Lease | None:
        """Take the lease if it is free, expired or already ours; a new owner gets a higher epoch. None if held."""
        return (await self.acquire_many([session_id], owner, ttl, takeover=takeover)).get(session_id)

    @abstractmethod
    async def acquire_many(
        self,
        session_ids: Sequence[SessionId],
        owner: str,
        ttl: float,
        *,
        takeover: str | None = None,
        limit: int | None = None,
        wanted: Desired | None = None,
    ) -> dict[SessionId, Lease]:
        """Take every lease that is free, expired or ours, in one transaction; the answer holds those taken.

        A live lease whose owner starts with ``takeover`` (an earlier run of this same worker, now gone) is taken
        as ours. Our own live lease keeps its epoch; any other taken lease gets a higher one, which fences every
        write still in flight under the old one. ``limit`` caps how many free or expired leases are taken (in the
        order of ``session_ids``); ours and those of our earlier run are taken whatever it says.

        ``wanted``: only sessions whose committed row, read in this transaction after their leases are locked,
        still asks for it and does not have it (to run and not FAILED; to stop and not yet STOPPED or FAILED). A
        session listed a moment before may have failed since, its runner gone: a listing is no reason to run it.
        """

    @abstractmethod
    async def beat(self, owner: str, ttl: float, url: str | None = None) -> dict[str, int]:
        """List the worker ``owner`` (reached at ``url``, if it says), alive for ``ttl`` seconds when it is new; from
        then on ``renew_all`` keeps it alive exactly as long as its leases, so that a worker that dies leaves the
        live ones when its leases lapse, not later. The answer maps every live worker (this one included) to the
        number of live session leases it holds."""

    @abstractmethod
    async def runs_on(self, session_id: SessionId) -> tuple[str, str | None] | None:
        """The live worker holding the session's lease and the address it gave, or None when none holds it."""

    @abstractmethod
    async def leave(self, owner: str) -> None:
        """The worker ``owner`` stops: it no longer counts among the live ones."""

    @abstractmethod
    async def recent_workers(self, within: float, *, besides: str) -> int:
        """How many workers other than those whose owner starts with ``besides`` were alive in the last ``within``
        seconds (up to an hour), stopped ones included: whether this is an installation of several workers."""

    @abstractmethod
    async def renew(self, session_id: SessionId, owner: str, epoch: int, ttl: float) -> bool: ...

    @abstractmethod
    async def renew_all(self, owner: str, ttl: float) -> set[SessionId]:
        """Extend every lease ``owner`` holds, and the worker's own life with them (one transaction); the answer is
        the set still held."""

    @abstractmethod
    async def next_lapse(self, *, besides: str, after: float) -> float | None:
        """The earliest expiry later than ``after`` of a lease held by another owner than ``besides``, or None: when
        the sessions of a worker that stopped renewing become free to take over."""

    @abstractmethod
    async def held(self, session_ids: Sequence[SessionId]) -> dict[SessionId, Lease]:
        """The leases of these sessions (free or lapsed ones too)."""

    @abstractmethod
    async def release(self, session_id: SessionId, owner: str, epoch: int) -> None: ...

    @abstractmethod
    async def release_all(self, owner: str) -> int: ...

    @abstractmethod
    async def get(self, session_id: SessionId) -> Lease | None: ...


@dataclass(frozen=True, slots=True)
class SealedRecord:
    namespace: str
    key: str
    version: int
    value: bytes


class AuthRecordStore(ABC):
    """Sealed auth-state records and the wrapped data key of each session. Writes are fenced by lease epoch."""

    @abstractmethod
    async def get_data_key(self, tenant_id: TenantId, session_id: SessionId) -> WrappedKey | None: ...

    @abstractmethod
    async def put_data_key_if_absent(
        self, tenant_id: TenantId, session_id: SessionId, wrapped: WrappedKey
    ) -> WrappedKey:
        """Store the wrapped key unless one exists; returns the stored one (so racing creators agree)."""

    @abstractmethod
    async def rewrap_all_data_keys_all_tenants(
        self, rewrap: Callable[[TenantId, SessionId, WrappedKey], WrappedKey | None]
    ) -> int:
        """System-wide: replace each wrapped key by ``rewrap``'s answer (None leaves it); returns how many changed."""

    @abstractmethod
    async def read(
        self, tenant_id: TenantId, session_id: SessionId, namespace: str, keys: Sequence[str]
    ) -> dict[str, SealedRecord]: ...

    @abstractmethod
    async def read_all(self, tenant_id: TenantId, session_id: SessionId) -> list[SealedRecord]: ...

    @abstractmethod
    async def bulk_load(
        self, session_ids: Sequence[SessionId], namespace: str
    ) -> tuple[dict[SessionId, WrappedKey], dict[SessionId, list[SealedRecord]]]:
        """System-wide, for restoring many sessions at once: their wrapped data keys, and their records in one
        namespace, in a few queries."""

    @abstractmethod
    async def write(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        owner: str,
        epoch: int,
        upserts: Mapping[tuple[str, str], bytes],
        deletes: Sequence[tuple[str, str]] = (),
        replace_all: bool = False,
    ) -> None:
        """One atomic transaction; raises ``LeaseLost`` when (owner, epoch) no longer holds the session's lease.

        ``replace_all`` deletes every other record of the session first (an import).
        """

    async def write_many(self, writes: Sequence[AuthWrite]) -> list[LeaseLost | None]:
        """Several sessions' writes; each fenced on its own (``LeaseLost`` in its place when refused). A store that
        can commits them in one transaction (group commit); this default commits them one by one."""
        results: list[LeaseLost | None] = []
        for w in writes:
            try:
                await self.write(
                    w.tenant_id,
                    w.session_id,
                    owner=w.owner,
                    epoch=w.epoch,
                    upserts=w.upserts,
                    deletes=w.deletes,
                    replace_all=w.replace_all,
                )
                results.append(None)
            except LeaseLost as exc:
                results.append(exc)
        return results


@dataclass(frozen=True, slots=True)
class AuthWrite:
    """One session's write of auth records, as ``AuthRecordStore.write`` takes it."""

    tenant_id: TenantId
    session_id: SessionId
    owner: str
    epoch: int
    upserts: Mapping[tuple[str, str], bytes]
    deletes: Sequence[tuple[str, str]] = ()
    replace_all: bool = False


class AuthState(Protocol):
    """A session's credentials as the engine sees them: plaintext in, sealed at rest."""

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The records that exist; ``DamagedRecord`` (with the readable ones) when some no longer open."""
        ...

    async def put_many(
        self, records: Mapping[tuple[str, str], bytes], *, deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Write ``records`` and delete ``deletes`` (namespace, key) together, atomically."""
        ...

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> None: ...

    async def export(self) -> bytes: ...

    async def import_bundle(self, bundle: bytes) -> int: ...


class Sealer(Protocol):
    """Seals what the store keeps for tenants (event payloads, webhook secrets), bound to where it belongs."""

    def seal(self, plaintext: bytes, purpose: str, *parts: str) -> tuple[str, bytes]:
        """(key id, sealed bytes)."""
        ...

    def open(self, key_id: str, sealed: bytes, purpose: str, *parts: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Webhook:
    id: WebhookId
    tenant_id: TenantId
    url: str
    events: list[str]
    session: str | None
    disabled_reason: str | None
    created_at: float
    header_names: tuple[str, ...] = ()  # the endpoint's own headers (their values are sealed, never shown)
    updated_at: float = 0.0
    previous_until: float | None = None  # after a rotation: until when the previous secret signs too
    blocked_reason: str | None = None  # why the SSRF guard refused its address at the latest attempt
    blocked_at: float | None = None  # since when

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the delivery worker needs of an endpoint: the webhook, its signing secret and its own headers."""

    webhook: Webhook
    secret: str
    headers: Headers = ()
    previous_secret: str | None = None

    def secrets(self, now: float) -> tuple[str, ...]:
        """The secrets a delivery at ``now`` is signed with: the current one, and the one before the last rotation
        while it is still valid (a receiver holding either verifies)."""
        until = self.webhook.previous_until
        if self.previous_secret is not None and until is not None and now < until:
            return (self.secret, self.previous_secret)
        return (self.secret,)


_UNCHANGED: Any = object()


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """A change to an endpoint: each field left ``UNCHANGED`` stays as it is (``session=None`` is a change: every
    session's events)."""

    url: str = _UNCHANGED
    events: list[str] = _UNCHANGED
    session: str | None = _UNCHANGED
    headers: Headers = _UNCHANGED

    @staticmethod
    def given(value: object) -> bool:
        return value is not _UNCHANGED


class DeliveryState:
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one webhook endpoint: an outbox row."""

    seq: int
    webhook_id: WebhookId
    tenant_id: TenantId
    session_id: SessionId
    event_id: EventId
    event_type: str
    state: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A delivery ready to send: the row, and the exact body every attempt carries."""

    delivery: Delivery
    body: str

    @property
    def group(self) -> tuple[WebhookId, SessionId]:
        return (self.delivery.webhook_id, self.delivery.session_id)


@dataclass(frozen=True, slots=True)
class Committed:
    """What one transaction committed: its events and the deliveries queued for them."""

    events: list[Event]
    deliveries: list[Outgoing]


CommitListener = Callable[[Committed], None]


@dataclass(frozen=True, slots=True)
class Announced:
    """Events another process committed, as it announced them: by tenant, their sequence numbers in order; or
    webhook endpoints it changed (read them again); or API keys it revoked and tenants it deleted (close their
    WebSocket streams). None of these: the process has just begun to listen (a hello), so it is alive and has
    WebSocket clients to serve."""

    process: str
    seqs: dict[TenantId, list[int]]
    webhooks: tuple[WebhookId, ...] = ()
    revoked_keys: tuple[ApiKeyId, ...] = ()
    deleted_tenants: tuple[TenantId, ...] = ()


AnnounceListener = Callable[[Announced], None]


class EventStore(ABC):
    """The event history and the webhook outbox it feeds (rows made in the transaction of the change)."""

    @property
    @abstractmethod
    def listeners(self) -> list[CommitListener]:
        """Called after each commit with what it committed (the bus, the webhook dispatcher)."""

    @abstractmethod
    def set_claimer(self, owner: str | None, ttl: float) -> None:
        """Deliveries queued from now on are claimed for ``owner`` (this process's dispatcher) in their own
        transaction, so it sends them at once; None leaves them for any worker's poll."""

    @abstractmethod
    def announce(self, process: str | None) -> None:
        """Events committed from now on are announced to the other processes on the database as ``process``'s, in
        their transactions (None: not announced). Where the database cannot (SQLite, one process), nothing."""

    @abstractmethod
    def listen(self, heard: AnnounceListener) -> AbstractAsyncContextManager[Callable[[], bool] | None]:
        """While the block runs, ``heard`` gets what other processes announce; the block's value tells whether
        the listening connection still stands, or is None where the database cannot announce (SQLite)."""

    @abstractmethod
    async def tell_peers(
        self,
        process: str,
        changed_webhooks: Sequence[WebhookId] = (),
        *,
        revoked_keys: Sequence[ApiKeyId] = (),
        deleted_tenants: Sequence[TenantId] = (),
    ) -> None:
        """Tell the other processes that ``process`` listens now (an announcement of no events), or that it changed
        these webhook endpoints, revoked these keys or deleted these tenants; nothing where the database cannot
        announce."""

    @abstractmethod
    async def events_by_seq(self, seqs: Sequence[int]) -> list[Event]:
        """The events with these sequence numbers (announced ones), in sequence order; any tenant."""

    @abstractmethod
    async def append(self, events: Sequence[Event]) -> None:
        """Commit events that report no state change of their own (messages, QR codes)."""

    @abstractmethod
    async def list_events(
        self,
        tenant_id: TenantId,
        *,
        session_id: SessionId | None = None,
        types: Sequence[str] | None = None,
        after: EventId | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Oldest first, after an event id (a cursor)."""

    @abstractmethod
    async def reseal_all_tenants(self, active_key: str) -> int:
        """Seal again under the active key every event sealed under another (key rotation); how many."""

    @abstractmethod
    async def prune_all_tenants(self, before: float, chunk: int = 5000) -> int:
        """System-wide: delete events older than ``before`` that no pending delivery needs, and finished
        deliveries of that age, at most ``chunk`` rows per transaction. Returns how many events went."""


class WebhookStore(ABC):
    @abstractmethod
    async def create(
        self,
        tenant_id: TenantId,
        url: str,
        events: list[str],
        session: str | None,
        secret: str,
        *,
        limit: int,
        headers: Headers = (),
    ) -> Webhook:
        """Raises ``QuotaExceeded`` when the tenant already has ``limit`` endpoints."""

    @abstractmethod
    async def rotate_secret(
        self, tenant_id: TenantId, webhook_id: WebhookId, secret: str, *, previous_until: float
    ) -> Webhook | None:
        """Make ``secret`` the endpoint's; the one it replaces keeps signing too until ``previous_until`` (one before
        that is forgotten). None: no such endpoint of this tenant."""

    @abstractmethod
    async def update(self, tenant_id: TenantId, webhook_id: WebhookId, change: WebhookChange) -> Webhook | None:
        """Apply ``change`` (None: no such endpoint of this tenant). Its queued deliveries stay queued, in order,
        and go to the endpoint as it now is."""

    @abstractmethod
    async def list_webhooks(self, tenant_id: TenantId) -> list[Webhook]: ...

    @abstractmethod
    async def get(self, tenant_id: TenantId, webhook_id: WebhookId) -> Webhook | None: ...

    @abstractmethod
    async def delete(self, tenant_id: TenantId, webhook_id: WebhookId) -> bool:
        """Delete an endpoint and its queued deliveries."""

    @abstractmethod
    async def set_disabled(self, tenant_id: TenantId, webhook_id: WebhookId, reason: str | None) -> Webhook | None:
        """Disable (with a reason) or enable (None) an endpoint."""

    @abstractmethod
    async def set_blocked(self, tenant_id: TenantId, webhook_id: WebhookId, reason: str | None) -> bool:
        """Record why the SSRF guard refused the endpoint's address (since now), or None once an attempt got
        through; True when that changed something (the same reason again keeps its time)."""

    @abstractmethod
    async def reseal_all_tenants(self, active_key: str) -> int:
        """Seal again under the active key every secret (and headers) sealed under another (key rotation); how
        many endpoints."""

    @abstractmethod
    async def secret_all_tenants(self, webhook_id: WebhookId) -> Endpoint | None:
        """System-wide, for the delivery worker: an endpoint with its signing secret and headers."""


class OutboxStore(ABC):
    """Webhook deliveries. A worker claims deliveries (owner, expiry) before sending; claims of a dead worker
    expire, and an earlier run of the same worker (owner prefix ``takeover``) counts as dead at once."""

    @abstractmethod
    async def claim(
        self, owner: str, *, takeover: str, ttl: float, limit: int, held: Callable[[int], bool] = lambda seq: False
    ) -> list[Outgoing]:
        """Claim due deliveries, whole groups (endpoint, session) from their oldest pending one, in order.

        A group whose oldest pending delivery is claimed by another live worker, is being sent by this one
        (``held(seq)``), or is not due yet, is left alone.
        """

    @abstractmethod
    async def pending_before(self, webhook_id: WebhookId, session_id: SessionId, seq: int) -> bool:
        """Whether an older delivery of this group is still pending."""

    @abstractmethod
    async def renew_claims(self, owner: str, ttl: float) -> None: ...

    @abstractmethod
    async def release(self, owner: str, seqs: Sequence[int]) -> None:
        """Give claimed deliveries back (the worker will not send them)."""

    @abstractmethod
    async def mark_delivered(self, seqs: Sequence[int], status: int) -> None: ...

    @abstractmethod
    async def mark_failed(
        self, seq: int, *, attempts: int, next_attempt_at: float, status: int | None, error: str, dead: bool
    ) -> None: ...

    @abstractmethod
    async def mark_refused(self, seqs: Sequence[int], error: str) -> None:
        """Dead letters at their attempt (counted), with ``error``: the SSRF guard refused the endpoint's address,
        which no retry on the schedule would mend."""

    @abstractmethod
    async def backlog(self, tenant_id: TenantId) -> dict[WebhookId, tuple[int, int]]:
        """Per endpoint of the tenant that has any: (pending deliveries, dead letters)."""

    @abstractmethod
    async def list_deliveries(
        self,
        tenant_id: TenantId,
        webhook_id: WebhookId,
        *,
        state: str | None,
        limit: int,
        before: int | None = None,
    ) -> list[Delivery]:
        """Newest first."""

    @abstractmethod
    async def redeliver(self, tenant_id: TenantId, webhook_id: WebhookId, seqs: Sequence[int] | None) -> int:
        """Queue dead deliveries again (all of the endpoint's when ``seqs`` is None); returns how many."""


class TicketStore(ABC):
    """Short-lived single-use tickets that let a browser open the WebSocket without its API key in the URL."""

    @abstractmethod
    async def issue(self, tenant_id: TenantId, key_id: ApiKeyId, ticket_hash: str, expires_at: float) -> None:
        """A ticket issued under one of the tenant's keys: it works only while that key does."""

    @abstractmethod
    async def redeem(self, ticket_hash: str) -> tuple[TenantId, ApiKeyId] | None:
        """Consume a ticket; its tenant and key when it existed, had not expired and its key is still valid."""


@dataclass(frozen=True, slots=True)
class Backup:
    """A sealed copy of a session's auth state (a bundle: opens with the keyring alone, not the data key)."""

    id: BackupId
    tenant_id: TenantId
    session_id: SessionId
    created_at: float
    reason: str
    records: int
    size: int


class BackupStore(ABC):
    @abstractmethod
    async def add(
        self, tenant_id: TenantId, session_id: SessionId, *, reason: str, records: int, payload: bytes, keep: int
    ) -> Backup:
        """Keep a backup, and only the newest ``keep`` of the session's, in one transaction."""

    @abstractmethod
    async def list_backups(self, tenant_id: TenantId, session_id: SessionId) -> list[Backup]:
        """Newest first."""

    @abstractmethod
    async def payload(self, tenant_id: TenantId, session_id: SessionId, backup_id: BackupId) -> bytes | None: ...

    @abstractmethod
    async def reseal_all_tenants(self, reseal: Callable[[bytes], bytes | None]) -> int:
        """Replace each payload that ``reseal`` returns a new one for (key rotation); how many."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A received message to store, with the ``message.received`` event that reports it (committed only if the
    message is new: inbound processing is idempotent by message id)."""

    tenant_id: TenantId
    session_id: SessionId
    id: str
    chat_id: str
    sender: str
    push_name: str | None
    kind: MessageKind
    timestamp: float
    body: bytes  # sealed
    event: Event


@dataclass(frozen=True, slots=True)
class Append:
    """What one session reports together: events, received messages (each stored with its event only if new),
    and the auth-state changes that go with them (a ratchet advanced by those messages)."""

    events: Sequence[Event] = ()
    inbound: Sequence[InboundMessage] = ()
    auth: AuthWrite | None = None


@dataclass(frozen=True, slots=True)
class NewOutbound:
    """A message to send, queued before anything else happens to it."""

    tenant_id: TenantId
    session_id: SessionId
    id: str
    chat_id: str
    sender: str
    kind: MessageKind
    body: bytes  # sealed
    media: bytes | None = None  # sealed, kept until sent
    idem_key: str | None = None
    idem_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status an outbound message may take (applied only when it moves forward, see ``domain.messages``)."""

    tenant_id: TenantId
    session_id: SessionId
    session_name: str
    message_id: str
    status: MessageStatus
    error: str | None = None
    timestamp: float | None = None


class MessageStore(ABC):
    """Messages (inbound and the outbound queue), chats, contacts and groups of each session."""

    @abstractmethod
    async def enqueue(self, new: NewOutbound, *, max_queued: int) -> tuple[Message, bool]:
        """Queue an outbound message; (message, False) when the tenant's idempotency key was used before with the
        same request. Raises ``QueueFull`` when the session has ``max_queued`` messages waiting and
        ``IdempotencyConflict`` when the key was used for another request."""

    @abstractmethod
    async def get(self, tenant_id: TenantId, session_id: SessionId, message_id: str) -> Message | None: ...

    @abstractmethod
    async def list_messages(
        self,
        tenant_id: TenantId,
        session_id: SessionId,
        *,
        chat_id: str | None,
        sender: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: int | None = None,
        newest_first: bool = True,
        limit: int = 100,
    ) -> list[Message]:
        """Pages by ``seq`` (the order of arrival): ``cursor`` is the last seq of the previous page."""

    @abstractmethod
    async def queued(self, tenant_id: TenantId, session_id: SessionId, limit: int) -> list[Message]:
        """Outbound messages waiting (pending or sending), oldest first."""

    @abstractmethod
    async def media(self, tenant_id: TenantId, session_id: SessionId, message_id: str) -> bytes | None:
        """The sealed media of a queued message."""

    @abstractmethod
    async def mark_sending(
        self, tenant_id: TenantId, session_id: SessionId, ids: Sequence[str], *, owner: str, epoch: int
    ) -> list[str]:
        """pending -> sending, one more attempt each: committed before the messages go to the engine, and only while
        ``(owner, epoch)`` holds the session's lease. The ids it moved: only those may be sent (a message another
        sender moved first is left out). Raises ``LeaseLost`` when the lease has moved on."""

    @abstractmethod
    async def update_status(self, updates: Sequence[StatusUpdate]) -> list[Message]:
        """Apply the updates that move a message forward, with a ``message.ack`` event for each one a tenant
        hears of, in one transaction; the messages changed. Media of a message that left the queue is dropped."""

    @abstractmethod
    async def fail_queued(self, tenant_id: TenantId, session_id: SessionId, session_name: str, error: str) -> int:
        """Fail every queued message of a session (logged out, wiped): they must not go out from another link."""

    @abstractmethod
    async def put_contacts(self, tenant_id: TenantId, session_id: SessionId, contacts: Sequence[Contact]) -> None: ...

    @abstractmethod
    async def put_groups(self, tenant_id: TenantId, session_id: SessionId, groups: Sequence[Group]) -> None: ...

    @abstractmethod
    async def list_chats(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: tuple[float, str] | None = None
    ) -> list[Chat]:
        """Most recent first; ``cursor`` is (last_message_at, id) of the previous page's last chat."""

    @abstractmethod
    async def list_contacts(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: str | None = None
    ) -> list[Contact]:
        """By id; ``cursor`` is the previous page's last id."""

    @abstractmethod
    async def list_groups(
        self, tenant_id: TenantId, session_id: SessionId, *, limit: int, cursor: str | None = None
    ) -> list[Group]: ...

    @abstractmethod
    async def prune_all_tenants(self, now: float, chunk: int = 5000) -> int:
        """System-wide: delete messages older than their tenant's retention (never queued ones), at most ``chunk``
        per transaction; how many."""

    @abstractmethod
    async def queued_sessions_all_tenants(self) -> set[SessionId]:
        """System-wide: the sessions with outbound messages waiting (for a worker to wake their senders)."""


class Store(ABC):
    """The store, one part per concern, plus its lifecycle."""

    backend: str
    tenants: TenantStore
    api_keys: ApiKeyStore
    sessions: SessionStore
    leases: LeaseStore
    auth: AuthRecordStore
    events: EventStore
    webhooks: WebhookStore
    outbox: OutboxStore
    tickets: TicketStore
    backups: BackupStore
    messages: MessageStore

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> float:
        """Round-trip time in seconds; raises ``StoreUnavailable`` when the database cannot answer."""

    @abstractmethod
    async def write_refusal(self) -> StoreUnavailable | None:
        """None while writes go through; otherwise why one was refused (read-only, disk full). Once a write was
        refused, each call first tries a probe write (one that needs some room), and only its success clears the
        refusal: a small write that finds room is no sign that the database takes a batch of messages again."""

    @abstractmethod
    def set_observer(self, observe: Callable[[str, float], None] | None) -> None:
        """Called with (``read`` or ``write``, seconds) after each store operation: for metrics."""

    @abstractmethod
    async def is_migrated(self) -> bool:
        """Every known migration has been applied."""

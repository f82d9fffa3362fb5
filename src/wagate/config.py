"""Settings: environment variables with the prefix ``WAGATE_``, optionally from a ``.env`` file.

Command-line options of ``wagate serve`` override them. Secrets are ``SecretStr`` so they never print by accident.
"""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wagate.logs import LOG_LEVELS, LogFormat

__all__ = ["ENGINE_NAMES", "ENV_PREFIX", "MIN_PRODUCTION_ADMIN_KEY", "Mode", "Settings", "describe_invalid", "env_name"]

ENV_PREFIX = "WAGATE_"
MIN_PRODUCTION_ADMIN_KEY = 32  # characters: a key typed by a person is short; one of 32 random characters is not


# The engines this build knows: what a session records, what ``POST /api/sessions`` accepts, what settings name.
ENGINE_NAMES: tuple[str, ...] = ("sim", "neonize")


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def env_name(field: str) -> str:
    """The environment variable of a setting: ``port`` -> ``WAGATE_PORT``."""
    return ENV_PREFIX + field.upper()


def describe_invalid(exc: ValidationError, options: dict[str, str] | None = None) -> str:
    """One line naming each refused setting by its environment variable (and by its command-line option when
    ``options`` maps the field to one), with why; never the value, which may be a secret."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = env_name(field) if field else "settings"
        if options and field in options:
            name = f"{options[field]} ({name})"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "; ".join(problems)


class Settings(BaseSettings):
    """Everything an operator can set; the docs site's configuration page is generated from it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    env: Mode = Field(
        Mode.DEVELOPMENT,
        description="development or production: production refuses to start without WAGATE_KEYS and generates no"
        " key (neither an encryption key nor an admin key)",
    )
    host: str = Field("127.0.0.1", description="address the HTTP server listens on")
    port: int = Field(8080, ge=0, le=65535, description="port the HTTP server listens on")
    data_dir: Path = Field(
        Path("./data"),
        description="directory for the SQLite file, the development key and runtime files; made 0700 at every start,"
        " and every file wagate creates is 0600",
    )
    database_url: str | None = Field(
        None,
        description="sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (postgres:// too; ?sslmode= as"
        " libpq takes it; the +aiosqlite and +asyncpg forms are the same); default: SQLite in the data dir",
    )
    database_schema: str | None = Field(None, description="PostgreSQL schema to use (default: the search path)")
    keys: SecretStr | None = Field(None, description="key-encryption keys: id:base64key[,id:base64key...]")
    active_key: str | None = Field(None, description="id of the key in WAGATE_KEYS that wraps new data keys")
    admin_key: SecretStr | None = Field(
        None,
        description=f"API key with admin rights; in production at least {MIN_PRODUCTION_ADMIN_KEY} characters (openssl"
        " rand -base64 33), or none and one issued by wagate admin-key new; in development, when none is set, the"
        " first start generates one and prints it once",
    )
    max_sessions_per_tenant: int = Field(
        5, ge=0, description="default session quota of a tenant (a tenant's own max_sessions wins)"
    )
    max_sessions_total: int = Field(100, ge=0, description="session quota of the whole installation")
    default_engine: str = Field(
        "neonize", description="engine of a session created without one (neonize; sim with --demo)"
    )
    sim_url: str | None = Field(None, description="simulator for the sim engine, e.g. http://127.0.0.1:9000")
    demo: bool = Field(
        False, description="run a simulator inside the gateway, at /sim, and make sim the default engine"
    )
    worker_id: str = Field(
        default_factory=lambda: socket.gethostname() or "wagate",
        description="this worker's name in session leases; unique among live workers (default: the host name)",
    )
    supervise: bool = Field(
        True,
        description="wagate serve runs the sessions and their webhook deliveries too; false: an API-only process,"
        " beside workers (wagate worker) on the same PostgreSQL database",
    )
    worker_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="port wagate worker listens on (on WAGATE_HOST) for /health, /ready, /metrics and the QR code and"
        " pairing code requests other processes forward to it",
    )
    worker_url: str | None = Field(
        None,
        description="this worker's address as the other workers reach it (http://host:port): they forward it the "
        "QR code and pairing code requests of the sessions it runs",
    )
    lease_ttl: float = Field(
        30.0,
        gt=0,
        description="seconds a session lease lasts without renewal (renewed every third of it): a dead worker's"
        " sessions are taken over at most this long after its last renewal",
    )
    reconcile_interval: float = Field(
        15.0, gt=0, description="seconds between full reconciliations (API changes apply at once)"
    )
    rebalance_step: int = Field(
        100,
        ge=0,
        description="WORKING sessions a worker above its share hands over to the others per reconcile (0: never)",
    )
    connect_timeout: float = Field(30.0, gt=0, description="seconds allowed for an engine to connect")
    connect_concurrency: int = Field(
        200, ge=1, description="connections being set up at once; the rest wait (no login storm after a restart)"
    )
    backoff_base: float = Field(1.0, gt=0, description="first reconnect delay bound, seconds")
    backoff_cap: float = Field(60.0, gt=0, description="largest reconnect delay bound, seconds")
    breaker_threshold: int = Field(5, ge=1, description="consecutive failures that open the circuit breaker")
    breaker_reset: float = Field(60.0, gt=0, description="seconds before an open breaker lets one attempt through")
    max_attempts: int = Field(12, ge=1, description="failed connection attempts before FAILED (max_retries)")
    qr_rounds: int = Field(3, ge=1, description="QR code rounds (each about 160 s) before FAILED (qr_timeout)")
    max_webhooks_per_tenant: int = Field(10, ge=0, description="webhook endpoints a tenant may register")
    webhook_timeout: float = Field(15.0, gt=0, description="seconds a webhook receiver has to answer")
    webhook_allow_private: bool = Field(
        False,
        description="lift the SSRF guard: let webhooks and media URLs reach loopback and private addresses"
        " (development and tests only)",
    )
    webhook_concurrency: int = Field(100, ge=1, description="webhook requests in flight at once")
    webhook_sender: Literal["process", "inline"] = Field(
        "process",
        description="where webhook requests are signed and sent: by a child process the gateway starts (signing,"
        " HTTP and TLS off the loop that runs the sessions), or inline in the gateway's own process",
    )
    webhook_poll_interval: float = Field(
        1.0, gt=0, description="seconds between looks at the outbox for retries and other workers' leftovers"
    )
    webhook_claim_ttl: float = Field(60.0, gt=0, description="seconds a worker's claim on a delivery lasts unrenewed")
    event_retention_days: float = Field(7.0, gt=0, description="days events and finished deliveries are kept")
    ws_max_pending: int = Field(
        1000, ge=1, description="events a WebSocket client may fall behind before it is cut off (close code 4408)"
    )
    ws_ticket_ttl: float = Field(30.0, gt=0, description="seconds a WebSocket ticket stays valid (it is single-use)")
    corruption_window: float = Field(
        60.0, gt=0, description='seconds over which decryption failures ("Bad MAC") are counted'
    )
    corruption_threshold: int = Field(
        5, ge=1, description="decryption failures within the window, across enough contacts, that quarantine a session"
    )
    corruption_min_contacts: int = Field(
        3, ge=1, description="distinct contacts the failures must span to quarantine the session"
    )
    contact_reset_threshold: int = Field(
        3, ge=1, description="failures from one contact within the window that reset that contact's session"
    )
    backups_keep: int = Field(3, ge=1, description="sealed backups kept per session (the newest)")
    backup_interval: float = Field(
        21600.0, ge=0, description="seconds between scheduled backups of a WORKING session; 0 turns them off"
    )
    health_interval: float = Field(30.0, gt=0, description="seconds between health checks of the running sessions")
    stuck_timeout: float = Field(
        120.0,
        gt=0,
        description="seconds in STARTING (not backing off), or SCAN_QR_CODE without a QR code, before the health"
        " monitor reconnects the session",
    )
    idle_timeout: float = Field(
        86400.0,
        gt=0,
        description="seconds without a message received or sent before a WORKING session whose config sets idle_stop"
        " is stopped (reason idle)",
    )
    send_rate: float = Field(
        20.0, gt=0, description="messages a minute one session sends at most (a session's config may lower or raise it)"
    )
    send_burst: int = Field(
        5,
        ge=1,
        description="messages a session may send at once before the rate applies (a session's config may set its own)",
    )
    send_queue_max: int = Field(
        1000, ge=1, description="messages waiting in a session's outbound queue before sends answer 429"
    )
    send_max_attempts: int = Field(5, ge=1, description="hand-overs of one message to the engine before it fails")
    send_poll_interval: float = Field(
        1.0, gt=0, description="seconds between looks for messages queued through another worker"
    )
    media_max_bytes: int = Field(16 * 1024 * 1024, ge=1, description="largest media a message may carry, in bytes")
    max_body_bytes: int | None = Field(
        None,
        ge=1024,
        description="largest request body, in bytes (413 above it); default: a base64 media of "
        "WAGATE_MEDIA_MAX_BYTES in JSON (4/3 of it) plus 64 KiB",
    )
    media_fetch_timeout: float = Field(30.0, gt=0, description="seconds allowed to fetch a media URL")
    media_fetch_per_tenant: int = Field(
        4, ge=1, description="media URLs one tenant's sends fetch at once (per worker); more wait their turn"
    )
    media_fetch_wait: float = Field(
        5.0,
        ge=0,
        description="seconds a send waits for its tenant's turn to fetch a media URL before it answers 429"
        " (media_fetch_busy, with Retry-After)",
    )
    neonize_dir: Path | None = Field(
        None,
        description="runtime directory of the neonize engine's whatsmeow files (mode 0700; rebuilt from the vault when"
        " lost); default: DATA_DIR/neonize",
    )
    neonize_snapshot_interval: float = Field(
        60.0,
        ge=0,
        description="seconds between looks for whatsmeow changes to snapshot into the vault (0: only at pairing,"
        " connect and stop)",
    )
    neonize_threads: int = Field(
        0,
        ge=0,
        description="threads for neonize's calls (each live session holds one); 0: the sessions it may run + 32 "
        "(WAGATE_HOST_SESSIONS in an engine host, WAGATE_MAX_SESSIONS_TOTAL in the gateway's process)",
    )
    neonize_probe: str = Field(
        "web.whatsapp.com:443",
        description="host:port reached before each neonize start (offline, no start is attempted); empty: no check",
    )
    neonize_probe_timeout: float = Field(5.0, gt=0, description="seconds allowed for the reachability check")
    hosted_engines: str = Field(
        "neonize",
        description="engines whose sessions run in engine host child processes, comma-separated (neonize, sim): a "
        "crash in one ends only its own sessions, which reconnect on another; empty: every engine in the gateway's "
        "process",
    )
    host_sessions: int = Field(50, ge=1, description="sessions one engine host runs at most; more start another")
    host_recycle_starts: int = Field(
        500, ge=0, description="connections an engine host opens before it takes no new session (0: no limit)"
    )
    host_recycle_rss: int = Field(
        2048, ge=0, description="MiB of resident memory past which an engine host takes no new session (0: no limit)"
    )
    host_recycle_age: float = Field(
        0.0, ge=0, description="seconds after its start when an engine host takes no new session (0: no limit)"
    )
    host_drain_after: float = Field(
        600.0,
        ge=0,
        description="seconds a retired engine host keeps its sessions before they are moved to another host, one a "
        "second (0: it keeps them until they end)",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis, e.g. redis://127.0.0.1:6379/0; nothing uses it yet but the server status, which reports"
        " whether it is reachable; needs the redis extra (pip install 'wagate[redis]')",
    )
    smtp_host: str | None = Field(None, description="SMTP server for operator notifications; none: no email")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port")
    smtp_user: str | None = Field(None, description="SMTP user name, when the server wants a login")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_from: str = Field("wagate@localhost", description="sender address of notifications")
    smtp_starttls: bool = Field(True, description="upgrade the SMTP connection with STARTTLS")
    notify_interval: float = Field(
        3600.0, ge=0, description="seconds during which a session's failures send at most one email"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_format: LogFormat = Field(LogFormat.TEXT, description="text, or json: one object per line")
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connections per process (its pool's size)")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("admin_key")
    @classmethod
    def _admin_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        short = value is not None and len(value.get_secret_value()) < MIN_PRODUCTION_ADMIN_KEY
        if short and info.data.get("env") is Mode.PRODUCTION:
            raise ValueError(
                f"in production the admin key must be at least {MIN_PRODUCTION_ADMIN_KEY} characters long (make one"
                " with `openssl rand -base64 33`), or leave it unset and issue one with `wagate admin-key new`"
            )
        return value

    @field_validator("hosted_engines")
    @classmethod
    def _hosted(cls, value: str) -> str:
        names = {name.strip().lower() for name in value.split(",") if name.strip()}
        unknown = sorted(names - set(ENGINE_NAMES))
        if unknown:
            raise ValueError(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(ENGINE_NAMES)}")
        return ",".join(sorted(names))

    @field_validator("default_engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in ENGINE_NAMES:
            raise ValueError(f"unknown engine {value!r}; known: {', '.join(ENGINE_NAMES)}")
        return value

    @field_validator("worker_url")
    @classmethod
    def _worker_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
            raise ValueError("the worker URL must be http(s)://host[:port], without a path")
        return value.rstrip("/")

    @property
    def hosted_engine_names(self) -> frozenset[str]:
        return frozenset(name for name in self.hosted_engines.split(",") if name)

    @property
    def production(self) -> bool:
        return self.env is Mode.PRODUCTION

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'wagate.db'}"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced, validated as the environment's values are (a command-line
        ``--port 99999`` is refused as ``WAGATE_PORT=99999`` is); ``None`` values are ignored (an option not given).
        Raises ``ValueError`` (pydantic's ``ValidationError``) for a bad value or a name that is no setting."""
        unknown = sorted(set(overrides) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"no such setting: {', '.join(unknown)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self).model_validate({**current, **given})

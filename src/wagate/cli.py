"""The ``wagate`` command: serve, keys, tenants, backup."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from wagate import __version__
from wagate.config import Settings, describe_invalid
from wagate.errors import ConfigError, StoreUnavailable, WagateError
from wagate.logs import LogFormat

if TYPE_CHECKING:
    from wagate.gateway import Gateway

log = logging.getLogger("wagate.cli")


def _typer(help_text: str, **extra: Any) -> typer.Typer:
    # Plain help, as click writes it: rich's markup would drop the "[env WAGATE_...]" notes of the options as unknown
    # tags, and show a flag such as --demo as an option that takes a value.
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, **extra)


app = _typer("wagate: a self-hosted WhatsApp session gateway.", add_completion=False)
keys_app = _typer("Encryption keys.")
tenants_app = _typer("Tenants and their API keys.")
backup_app = _typer("Move a session between installations (same keys) as one sealed file.")
admin_app = _typer("The admin API key.")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.add_typer(backup_app, name="backup")
app.add_typer(admin_app, name="admin-key")

_T = TypeVar("_T")


def _settings(**overrides: object) -> Settings:
    """The settings from the environment, then the command line's options over them; a refused value ends the
    command with one line naming its environment variable (or its option)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        _fail(f"invalid settings: {describe_invalid(exc)}")
    try:
        return settings.with_overrides(**overrides)
    except ValidationError as exc:
        _fail(f"invalid settings: {describe_invalid(exc, {name: _option(name) for name in overrides})}")


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _fail(message: str) -> NoReturn:
    typer.echo(f"wagate: {message}", err=True)
    raise typer.Exit(code=2)


def _run(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    try:
        return asyncio.run(make())
    except WagateError as exc:
        _fail(str(exc))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on [env WAGATE_HOST, default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on [env WAGATE_PORT, default 8080]")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="directory for the SQLite database, dev keys and runtime files [env WAGATE_DATA_DIR, default ./data]"
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB "
            "[env WAGATE_DATABASE_URL, default SQLite in the data dir]"
        ),
    ] = None,
    log_format: Annotated[LogFormat | None, typer.Option(help="text or json [env WAGATE_LOG_FORMAT]")] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING [env WAGATE_LOG_LEVEL]")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="run a simulator inside the gateway and make sim the default engine")
    ] = False,
    sim_url: Annotated[str | None, typer.Option(help="simulator for the sim engine [env WAGATE_SIM_URL]")] = None,
) -> None:
    """Run the gateway: the REST API, the dashboard and the session supervisor (WAGATE_SUPERVISE=false: the API
    only, beside workers)."""
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        log_format=log_format,
        log_level=log_level,
        sim_url=sim_url,
        demo=demo or None,
    )
    if settings.demo:
        from wagate.api.demo import refuse_in_production

        try:
            refuse_in_production(settings)
        except ConfigError as exc:
            _fail(str(exc))
        settings = settings.with_overrides(default_engine="sim")
    _run_process(settings, settings.port)


@app.command()
def worker(
    host: Annotated[str | None, typer.Option(help="address to listen on [env WAGATE_HOST, default 127.0.0.1]")] = None,
    port: Annotated[
        int | None, typer.Option(help="port for health, metrics and forwarded requests [env WAGATE_WORKER_PORT]")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="directory for runtime files [env WAGATE_DATA_DIR, default ./data]")
    ] = None,
    log_format: Annotated[LogFormat | None, typer.Option(help="text or json [env WAGATE_LOG_FORMAT]")] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING [env WAGATE_LOG_LEVEL]")] = None,
) -> None:
    """Run sessions and webhook deliveries without the API: only /health, /ready, /metrics, and the QR code and
    pairing code requests that API processes forward (WAGATE_WORKER_URL)."""
    settings = _settings(
        host=host, worker_port=port, data_dir=data_dir, log_format=log_format, log_level=log_level, demo=False
    )
    _run_process(settings, settings.worker_port, worker=True)


def _run_process(settings: Settings, port: int, *, worker: bool = False) -> None:
    """Serve a gateway or a worker on ``port`` until it is told to stop; exit 1 if it could not start."""
    from wagate.crypto.keyring import load_keyring
    from wagate.logs import configure_logging
    from wagate.runtime.server import bind, lock_data_dir, prepare_data_dir, run_server

    configure_logging(settings.log_level, settings.log_format)
    try:
        prepare_data_dir(settings.data_dir)
    except ConfigError as exc:
        _fail(str(exc))
    if not lock_data_dir(settings.data_dir):
        _fail(f"another wagate process is serving from {settings.data_dir}; stop it or use another --data-dir")
    _check_database_url(settings)
    try:
        keyring = load_keyring(settings)  # fail fast, before the server binds, with the operator's instructions
        # Before the admin key is made: a taken port must not burn it.
        sock = bind(settings.host, port, "WAGATE_WORKER_PORT" if worker else "WAGATE_PORT")
    except ConfigError as exc:
        _fail(str(exc))
    try:
        started = run_server(settings, keyring, sock, worker=worker)
    except StoreUnavailable as exc:
        _database_failed(exc)
    except ConfigError as exc:
        _fail(str(exc))
    if not started:
        sys.exit(1)


def _check_database_url(settings: Settings) -> None:
    from wagate.store import driver_url

    try:
        driver_url(settings.resolved_database_url)
    except ConfigError as exc:
        _fail(f"WAGATE_DATABASE_URL: {exc}")


def _database_failed(exc: StoreUnavailable) -> NoReturn:
    """One line for the operator; the traceback only with --log-level debug."""
    log.debug("the database could not be opened", exc_info=exc)
    _fail(f"WAGATE_DATABASE_URL: {exc}")


async def _open_gateway() -> Gateway:
    """The gateway for a command; a database URL that cannot work, or a database that cannot be opened, ends the
    command with one line naming WAGATE_DATABASE_URL."""
    from wagate.gateway import Gateway

    settings = _settings()
    _check_database_url(settings)
    try:
        return await Gateway.open(settings)
    except StoreUnavailable as exc:
        _database_failed(exc)


@app.command("sim-server")
def sim_server(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 9000,
    state: Annotated[Path, typer.Option(help="file that keeps the simulator's state across restarts")] = Path(
        "./data/sim-state.json"
    ),
    qr_first_ttl: Annotated[float, typer.Option(help="seconds the first QR code of a round is valid")] = 60.0,
    qr_ttl: Annotated[float, typer.Option(help="seconds each following QR code is valid")] = 20.0,
    qr_count: Annotated[int, typer.Option(help="QR codes in a round before the connection times out")] = 6,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
    key: Annotated[
        str | None,
        typer.Option(
            envvar="WAGATE_SIM_KEY",
            help="a key the control API then requires in X-Api-Key (without one it is open: keep it on loopback)",
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Run the WhatsApp simulator: a fake service for the sim engine, with a control API for tests and demos."""
    from wagate.engines.sim.host import run_sim_server
    from wagate.engines.sim.server import SimOptions, SimServer
    from wagate.logs import LogFormat, configure_logging

    configure_logging(log_level.upper(), LogFormat.TEXT)
    options = SimOptions(qr_first_ttl=qr_first_ttl, qr_ttl=qr_ttl, qr_count=qr_count)
    if not run_sim_server(SimServer(options, state), host, port, key):
        sys.exit(1)


@keys_app.command("generate")
def keys_generate(key_id: Annotated[str, typer.Option("--id", help="the new key's id")] = "k1") -> None:
    """Print a new key-encryption key as id:base64key, for WAGATE_KEYS."""
    from wagate.crypto.keyring import generate_key_spec

    try:
        typer.echo(generate_key_spec(key_id))
    except ConfigError as exc:
        _fail(str(exc))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Rewrap every session's data key, and reseal webhook secrets, stored events and backups, under
    WAGATE_ACTIVE_KEY.

    Auth record ciphertexts are not rewritten (they are sealed with the session's data key)."""
    from wagate.store.vault import reseal_bundle

    async def rotate() -> tuple[int, int, int]:
        gateway = await _open_gateway()
        keyring = gateway.keyring
        try:
            keys = await gateway.store.auth.rewrap_all_data_keys_all_tenants(
                lambda tenant, session, wrapped: (
                    None if wrapped.kek_id == keyring.active_id else keyring.rewrap(wrapped, tenant, session)
                )
            )
            secrets = await gateway.store.webhooks.reseal_all_tenants(keyring.active_id)
            events = await gateway.store.events.reseal_all_tenants(keyring.active_id)
            await gateway.store.backups.reseal_all_tenants(lambda bundle: reseal_bundle(keyring, bundle))
            return keys, secrets, events
        finally:
            await gateway.close()

    keys, secrets, events = _run(rotate)
    typer.echo(
        f"rewrapped {keys} data key(s), resealed {secrets} webhook secret(s) and {events} event(s) under the active"
        " key; keys no longer active can be removed"
    )


@tenants_app.command("create")
def tenants_create(
    name: str,
    email: Annotated[str | None, typer.Option(help="contact address for notifications")] = None,
    max_sessions: Annotated[
        int | None, typer.Option(help="session quota (default: WAGATE_MAX_SESSIONS_PER_TENANT)")
    ] = None,
) -> None:
    """Create a tenant and print its first API key (shown only once)."""
    from wagate.services.accounts import create_tenant

    async def create() -> tuple[str, str]:
        gateway = await _open_gateway()
        try:
            tenant, issued = await create_tenant(gateway.store, name, contact_email=email, max_sessions=max_sessions)
            return tenant.id, issued.secret
        finally:
            await gateway.close()

    tenant_id, secret = _run(create)
    typer.echo(f"tenant: {tenant_id}\napi key: {secret}")


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants."""

    async def listing() -> list[tuple[str, str, int]]:
        gateway = await _open_gateway()
        try:
            return [
                (t.id, t.name, await gateway.store.sessions.count(t.id)) for t in await gateway.store.tenants.list_all()
            ]
        finally:
            await gateway.close()

    for tenant_id, name, count in _run(listing):
        typer.echo(f"{tenant_id}\t{name}\t{count} session(s)")


@admin_app.command("new")
def admin_key_new(
    keep_others: Annotated[
        bool, typer.Option("--keep-others", help="keep the admin keys issued before (revoked otherwise)")
    ] = False,
) -> None:
    """Issue a new admin API key, printed once and stored as a hash: for when the key shown at the first start is
    lost. WAGATE_ADMIN_KEY, if set, stays valid."""
    from wagate.services.accounts import new_admin_key

    async def issue() -> tuple[str, int]:
        gateway = await _open_gateway()
        try:
            issued, revoked = await new_admin_key(gateway.store, keep_others=keep_others)
            return issued.secret, revoked
        finally:
            await gateway.close()

    secret, revoked = _run(issue)
    typer.echo(f"admin api key: {secret}")
    if revoked:
        typer.echo(f"revoked {revoked} admin key(s) issued before", err=True)


def main() -> None:
    # Whatever wagate creates (the database and its WAL, exports, the simulator's state, neonize's files, a
    # development key) is its user's alone, whichever library creates it.
    os.umask(0o077)
    app()


@backup_app.command("export")
def backup_export(
    tenant: Annotated[str, typer.Option(help="the tenant's id or name")],
    session: Annotated[str, typer.Option(help="the session's name")],
    out: Annotated[Path, typer.Option(help="file to write (created, mode 0600)")],
) -> None:
    """Write a linked session's settings and credentials, sealed under the active key, to a file."""
    from wagate.services.transfer import export_session

    async def export() -> bytes:
        gateway = await _open_gateway()
        try:
            return await export_session(gateway, tenant, session)
        finally:
            await gateway.close()

    data = _run(export)
    try:
        with os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(data)
    except FileExistsError:
        _fail(f"{out} exists; choose another file")
    typer.echo(f"exported session {session!r} to {out} ({len(data)} bytes); stop it here before it runs elsewhere")


@backup_app.command("import")
def backup_import(
    file: Annotated[Path, typer.Argument(help="a file from wagate backup export")],
    tenant: Annotated[str, typer.Option(help="the tenant's id or name in this installation")],
    name: Annotated[str | None, typer.Option(help="a new name for the session")] = None,
    start: Annotated[bool, typer.Option(help="ask for the session to run once imported")] = True,
) -> None:
    """Create a session from an export file; a running gateway connects it without a new QR scan."""
    from wagate.services.transfer import import_session

    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")

    async def import_() -> str:
        gateway = await _open_gateway()
        try:
            made = await import_session(gateway, data, tenant, name=name, start=start)
            return made.name
        finally:
            await gateway.close()

    typer.echo(f"imported session {_run(import_)!r}")

"""``wagate serve``, ``wagate worker`` and ``wagate sim-server``: the long-running processes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from wagate import __version__
from wagate.cli.base import app, check_database_url, database_failed, fail, settings_from_env
from wagate.config import Settings
from wagate.errors import ConfigError, StoreUnavailable
from wagate.logs import LogFormat
from wagate.net.redis import require_redis_client

__all__ = ["run_process", "serve", "sim_server", "version", "worker"]


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
    settings = settings_from_env(
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
            fail(str(exc))
        settings = settings.with_overrides(default_engine="sim")
    run_process(settings, settings.port)


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
    settings = settings_from_env(
        host=host, worker_port=port, data_dir=data_dir, log_format=log_format, log_level=log_level, demo=False
    )
    run_process(settings, settings.worker_port, worker=True)


def run_process(settings: Settings, port: int, *, worker: bool = False) -> None:
    """Serve a gateway or a worker on ``port`` until it is told to stop; exit 1 if it could not start."""
    from wagate.crypto.keyring import load_keyring
    from wagate.logs import configure_logging
    from wagate.runtime.server import bind, lock_data_dir, prepare_data_dir, run_server

    try:
        require_redis_client(settings)
    except ConfigError as exc:
        fail(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    try:
        prepare_data_dir(settings.data_dir)
    except ConfigError as exc:
        fail(str(exc))
    if not lock_data_dir(settings.data_dir):
        fail(f"another wagate process is serving from {settings.data_dir}; stop it or use another --data-dir")
    check_database_url(settings)
    try:
        keyring = load_keyring(settings)  # fail fast, before the server binds, with the operator's instructions
        # Before the admin key is made: a taken port must not burn it.
        sock = bind(settings.host, port, "WAGATE_WORKER_PORT" if worker else "WAGATE_PORT")
    except ConfigError as exc:
        fail(str(exc))
    try:
        started = run_server(settings, keyring, sock, worker=worker)
    except StoreUnavailable as exc:
        database_failed(exc)
    except ConfigError as exc:
        fail(str(exc))
    if not started:
        sys.exit(1)


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

"""Running the HTTP server: SIGTERM and SIGINT stop it gracefully and the process exits 0."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
import uvloop
from starlette.types import ASGIApp

from wagate.config import Settings
from wagate.crypto.keyring import Keyring

GC_THRESHOLD = (70_000, 20, 20)
GRACEFUL_SHUTDOWN_SECONDS = 8  # under the 10 s that orchestrators commonly wait before SIGKILL


class GatewayServer(uvicorn.Server):
    """uvicorn re-raises a captured signal after shutting down, so the process dies *by* SIGTERM. A stop that
    an operator asked for is not a failure: handle the signal, shut down, and return normally."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def prepare_data_dir(path: Path) -> None:
    """Create the data directory readable by its owner only: it holds the database and, in development, the key."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)


_LOCKS: list[int] = []


def lock_data_dir(path: Path) -> bool:
    """Hold an exclusive lock on the data directory for the life of the process; False if another one holds it."""
    fd = os.open(path / "wagate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _LOCKS.append(fd)
    return True


def tune_gc() -> None:
    """Make the cyclic garbage collector fit a long-running server holding thousands of sessions.

    By default a young-generation pass runs every 700 allocations and the older generations follow; with ten
    thousand sessions' objects alive each older pass walks all of them, and a mass restart spent about an eighth of
    its CPU there. What exists once the server is loaded (modules, the app) is frozen out of collection for good,
    and passes run a hundred times less often; garbage cycles are still collected, later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
        ws="websockets-sansio",  # of uvicorn's WebSocket servers the cheapest per connection
        ws_max_size=8 * 1024 * 1024,
        ws_per_message_deflate=False,
    )


def run_server(settings: Settings, keyring: Keyring) -> bool:
    """Open the gateway, then serve it until SIGTERM/SIGINT; False if the app could not start (port taken,
    start-up failed).

    A database that cannot be opened raises (ConfigError, StoreUnavailable) before anything is served."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(settings, keyring))


async def _serve(settings: Settings, keyring: Keyring) -> bool:
    # Here, not at the top: the simulator's process uses this module too, and needs none of the gateway.
    from wagate.accounts import announce_admin_key, bootstrap_admin
    from wagate.api.app import create_app
    from wagate.gateway import Gateway

    gateway = await Gateway.open(settings, keyring=keyring)
    try:
        secret = await bootstrap_admin(gateway.store, settings)
        if secret is not None:
            announce_admin_key(secret)
        server = GatewayServer(_config(create_app(settings, gateway=gateway), settings.host, settings.port))
        tune_gc()
        await server.serve()
        return server.started
    finally:
        await gateway.close()

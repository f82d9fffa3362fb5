"""Running the HTTP server: SIGTERM and SIGINT stop it gracefully and the process exits 0."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
import uvloop
from starlette.types import ASGIApp

from wagate.config import Settings
from wagate.crypto.keyring import Keyring
from wagate.errors import ConfigError
from wagate.tuning import tune_gc

__all__ = [
    "BACKLOG",
    "GRACEFUL_SHUTDOWN_SECONDS",
    "GatewayServer",
    "bind",
    "lock_data_dir",
    "prepare_data_dir",
    "run_server",
]

log = logging.getLogger("wagate.server")

GRACEFUL_SHUTDOWN_SECONDS = 8  # under the 10 s that orchestrators commonly wait before SIGKILL
BACKLOG = 2048  # uvicorn's


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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:  # uvicorn names the address only of the sockets it binds itself
            host, port = sockets[0].getsockname()[:2]
            log.info("serving on http://%s:%d", f"[{host}]" if ":" in host else host, port)


def prepare_data_dir(path: Path) -> None:
    """Make the data directory its owner's alone (0700), creating it or tightening it: it holds the database, its
    WAL, the simulator's state and, in development, the key. ConfigError when that cannot be done."""
    try:
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"cannot prepare the data directory {path} (WAGATE_DATA_DIR): {exc.strerror}") from None
    if mode & 0o077:
        log.warning("the data directory %s was open to other users (mode %04o); it is 0700 now", path, mode)


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


def bind(host: str, port: int, port_setting: str = "WAGATE_PORT") -> socket.socket:
    """The server's listening socket, taken before anything else starts: a port in use ends start-up before the
    database is opened or an admin key made (one made then would be shown for a server that never ran)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn decides
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {host}:{port}: the port is in use; stop what holds it or choose another port"
                f" ({port_setting}, --port)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port} (WAGATE_HOST, {port_setting}): {exc.strerror}") from None
    return sock


def _config(app: ASGIApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
        ws="websockets-sansio",  # of uvicorn's WebSocket servers the cheapest per connection
        ws_max_size=8 * 1024 * 1024,
        ws_per_message_deflate=False,
        backlog=BACKLOG,
    )


def run_server(settings: Settings, keyring: Keyring, sock: socket.socket, *, worker: bool = False) -> bool:
    """Open the gateway, then serve it on ``sock`` until SIGTERM/SIGINT; False if the app could not start.
    ``worker``: a worker-only process (sessions and deliveries, health and metrics, no tenant API).

    A database that cannot be opened raises (ConfigError, StoreUnavailable) before anything is served."""
    with sock, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(settings, keyring, sock, worker=worker))


async def _serve(settings: Settings, keyring: Keyring, sock: socket.socket, *, worker: bool) -> bool:
    # Here, not at the top: the simulator's process uses this module too, and needs none of the gateway.
    from wagate.api.app import create_app, create_worker_app
    from wagate.gateway import Gateway
    from wagate.runtime.node import Node
    from wagate.services.accounts import announce_admin_key, bootstrap_admin

    gateway = await Gateway.open(settings, keyring=keyring)
    try:
        if worker:
            app = create_worker_app(Node(gateway))
        else:
            secret = await bootstrap_admin(gateway.store, settings)
            if secret is not None:
                announce_admin_key(secret)  # the port is held and the store open: this start will serve it
            app = create_app(Node(gateway, supervise=settings.supervise))
        server = GatewayServer(_config(app))
        tune_gc()
        await server.serve(sockets=[sock])
        return server.started
    finally:
        await gateway.close()

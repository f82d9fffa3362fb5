"""Running the HTTP server: SIGTERM and SIGINT stop it gracefully and the process exits 0."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from wagate.config import Settings
from wagate.crypto.keyring import Keyring

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


def run_server(settings: Settings, keyring: Keyring) -> bool:
    """Serve until stopped; False if the server could not start (port taken, start-up failed)."""
    from wagate.api.app import create_app

    config = uvicorn.Config(
        create_app(settings, keyring=keyring),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
    )
    server = GatewayServer(config)
    server.run()
    return server.started

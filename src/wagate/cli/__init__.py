"""The ``wagate`` command: one module per command group, gathered on one root command."""

from __future__ import annotations

import os

from wagate.cli import doctor as doctor  # its command: doctor
from wagate.cli import serve as serve  # its commands: serve, worker, sim-server, version
from wagate.cli.backup import backup_app
from wagate.cli.base import app
from wagate.cli.keys import admin_app, keys_app
from wagate.cli.sessions import sessions_app
from wagate.cli.tenants import tenants_app

__all__ = ["app", "main"]

app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.add_typer(sessions_app, name="sessions")
app.add_typer(backup_app, name="backup")
app.add_typer(admin_app, name="admin-key")


def main() -> None:
    # Whatever wagate creates (the database and its WAL, exports, the simulator's state, neonize's files, a
    # development key) is its user's alone, whichever library creates it.
    os.umask(0o077)
    app()

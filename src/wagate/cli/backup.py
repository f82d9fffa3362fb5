"""``wagate backup``: a session moved between installations (same keys) as one sealed file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from wagate.cli.base import fail, make_typer, open_gateway, run

__all__ = ["backup_app", "backup_export", "backup_import"]

backup_app = make_typer("Move a session between installations (same keys) as one sealed file.")


@backup_app.command("export")
def backup_export(
    tenant: Annotated[str, typer.Option(help="the tenant's id or name")],
    session: Annotated[str, typer.Option(help="the session's name")],
    out: Annotated[Path, typer.Option(help="file to write (created, mode 0600)")],
) -> None:
    """Write a linked session's settings and credentials, sealed under the active key, to a file."""
    from wagate.services.transfer import export_session

    async def export() -> bytes:
        gateway = await open_gateway()
        try:
            return await export_session(gateway, tenant, session)
        finally:
            await gateway.close()

    data = run(export)
    try:
        with os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(data)
    except FileExistsError:
        fail(f"{out} exists; choose another file")
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
        fail(f"cannot read {file}: {exc.strerror}")

    async def import_() -> str:
        gateway = await open_gateway()
        try:
            made = await import_session(gateway, data, tenant, name=name, start=start)
            return made.name
        finally:
            await gateway.close()

    typer.echo(f"imported session {run(import_)!r}")

"""``wagate tenants``: tenants and their API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from wagate.cli.base import make_typer, open_gateway, run

__all__ = ["tenants_app", "tenants_create", "tenants_list"]

tenants_app = make_typer("Tenants and their API keys.")


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
        gateway = await open_gateway()
        try:
            tenant, issued = await create_tenant(gateway.store, name, contact_email=email, max_sessions=max_sessions)
            return tenant.id, issued.secret
        finally:
            await gateway.close()

    tenant_id, secret = run(create)
    typer.echo(f"tenant: {tenant_id}\napi key: {secret}")


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants."""

    async def listing() -> list[tuple[str, str, int]]:
        gateway = await open_gateway()
        try:
            return [
                (t.id, t.name, await gateway.store.sessions.count(t.id)) for t in await gateway.store.tenants.list_all()
            ]
        finally:
            await gateway.close()

    for tenant_id, name, count in run(listing):
        typer.echo(f"{tenant_id}\t{name}\t{count} session(s)")

"""``wagate sessions``: a tenant's sessions from the command line, over the same database as a running gateway.

The commands call the same service as the API (``wagate.services.sessions``) and record ``cli`` in the sessions'
history. They record what is wanted; the gateway's supervisor acts on it at its next reconcile
(``WAGATE_RECONCILE_INTERVAL``). A logout needs the process that runs the session, so it goes through the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from wagate.cli.base import fail, make_typer, open_gateway, run
from wagate.domain.sessions import NAME_PATTERN, Session
from wagate.errors import ServiceUnavailable
from wagate.ids import TenantId

if TYPE_CHECKING:  # the service and the store load when a command runs, not with every ``wagate`` command
    from wagate.services.sessions import SessionService

__all__ = [
    "ACTOR",
    "HEADER",
    "NameArgument",
    "TenantOption",
    "line",
    "sessions_app",
    "sessions_create",
    "sessions_delete",
    "sessions_list",
    "sessions_logout",
]

sessions_app = make_typer("A tenant's sessions: list, create, start, stop, restart, log out, delete.")
ACTOR = "cli"
HEADER = "name\tstatus\treason\tdesired\tengine"

TenantOption = Annotated[str, typer.Option(help="the tenant's id or name")]
NameArgument = Annotated[str, typer.Argument(help="the session's name")]


def line(session: Session) -> str:
    reason = session.reason.value if session.reason is not None else "-"
    return f"{session.name}\t{session.status.value}\t{reason}\t{session.desired.value}\t{session.engine}"


def _act(tenant: str, act: Callable[[SessionService, TenantId], Awaitable[Session | None]]) -> Session | None:
    """Open the gateway, find the tenant, run ``act`` with the service; a refusal ends the command with one line."""

    async def acting() -> Session | None:
        from wagate.services.sessions import SessionService
        from wagate.services.transfer import find_tenant

        gateway = await open_gateway()
        try:
            found = await find_tenant(gateway, tenant)
            return await act(SessionService(gateway, None, actor=ACTOR), found.id)
        finally:
            await gateway.close()

    return run(acting)


@sessions_app.command("list")
def sessions_list(
    tenant: TenantOption,
    all: Annotated[bool, typer.Option("--all", help="include STOPPED sessions")] = False,
) -> None:
    """List the tenant's sessions, each as it is (a row that speaks for a dead worker is not shown WORKING)."""

    async def listing() -> list[Session]:
        from wagate.services.sessions import SessionService
        from wagate.services.transfer import find_tenant

        gateway = await open_gateway()
        try:
            found = await find_tenant(gateway, tenant)
            return await SessionService(gateway, None, actor=ACTOR).list(found.id, include_stopped=all)
        finally:
            await gateway.close()

    typer.echo(HEADER)
    for session in run(listing):
        typer.echo(line(session))


@sessions_app.command("create")
def sessions_create(
    tenant: TenantOption,
    name: NameArgument,
    engine: Annotated[str | None, typer.Option(help="the engine (default: WAGATE_DEFAULT_ENGINE)")] = None,
    config: Annotated[str | None, typer.Option(help='the session\'s config as JSON, e.g. {"send_rate": 10}')] = None,
    start: Annotated[bool, typer.Option(help="ask for the session to run once created")] = True,
) -> None:
    """Create a session (within the tenant's quota)."""
    from wagate.api.session_schemas import SessionConfig

    if not NAME_PATTERN.fullmatch(name) or len(name) > 64:
        fail(f"invalid session name {name!r}: 1-64 of A-Z a-z 0-9 _ -")
    try:
        values = SessionConfig.model_validate_json(config or "{}").model_dump(exclude_none=True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        fail(f"invalid --config: {problems}")
    made = _act(tenant, lambda sessions, t: sessions.create(t, name, engine=engine, config=values, start=start))
    assert made is not None
    typer.echo(line(made))


def _change(verb: str, help_text: str, act: Callable[[SessionService, TenantId, str], Awaitable[Session]]) -> None:
    def command(tenant: TenantOption, name: NameArgument) -> None:
        changed = _act(tenant, lambda sessions, t: act(sessions, t, name))
        assert changed is not None
        typer.echo(line(changed))

    command.__doc__ = help_text
    sessions_app.command(verb)(command)


_change("start", "Ask for the session to run (also after it FAILED).", lambda s, t, n: s.start(t, n))
_change("stop", "Ask for the session to stop; its credentials are kept.", lambda s, t, n: s.stop(t, n))
_change("restart", "Restart the session; it runs afterwards, whatever it did before.", lambda s, t, n: s.restart(t, n))


@sessions_app.command("logout")
def sessions_logout(tenant: TenantOption, name: NameArgument) -> None:
    """Unlink the phone and wipe the credentials: done by the process that runs the session, through its API."""

    async def logout(sessions: SessionService, tenant_id: TenantId) -> Session:
        try:
            return await sessions.logout(tenant_id, name)
        except ServiceUnavailable:
            raise ServiceUnavailable(
                f"a logout is done by the gateway that runs the session: POST /api/sessions/{name}/logout with the"
                " tenant's API key (or stop the session, then wagate sessions delete to remove it with its data)",
                code="no_supervisor",
            ) from None

    _act(tenant, logout)


@sessions_app.command("delete")
def sessions_delete(
    tenant: TenantOption,
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a session with its credentials and messages; the worker running it stops it."""
    if not yes:
        typer.confirm(f"delete session {name!r} with its credentials and messages?", abort=True)

    async def delete(sessions: SessionService, tenant_id: TenantId) -> None:
        await sessions.delete(tenant_id, name)

    _act(tenant, delete)
    typer.echo(f"deleted session {name!r}")

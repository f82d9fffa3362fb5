"""What every command of ``wagate`` shares: the root command, settings from the environment and the options, one
line for a failure, the gateway a command opens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from wagate.config import Settings, describe_invalid
from wagate.errors import ConfigError, StoreUnavailable, WagateError

if TYPE_CHECKING:
    from wagate.gateway import Gateway

__all__ = [
    "app",
    "check_database_url",
    "database_failed",
    "fail",
    "make_typer",
    "open_gateway",
    "option_name",
    "run",
    "settings_from_env",
]

log = logging.getLogger("wagate.cli")


def make_typer(help_text: str, **extra: Any) -> typer.Typer:
    # Plain help, as click writes it: rich's markup would drop the "[env WAGATE_...]" notes of the options as unknown
    # tags, and show a flag such as --demo as an option that takes a value.
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, **extra)


app = make_typer("wagate: a self-hosted WhatsApp session gateway.", add_completion=False)

_T = TypeVar("_T")


def settings_from_env(**overrides: object) -> Settings:
    """The settings from the environment, then the command line's options over them; a refused value ends the
    command with one line naming its environment variable (or its option)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        fail(f"invalid settings: {describe_invalid(exc)}")
    try:
        return settings.with_overrides(**overrides)
    except ValidationError as exc:
        fail(f"invalid settings: {describe_invalid(exc, {name: option_name(name) for name in overrides})}")


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def fail(message: str) -> NoReturn:
    typer.echo(f"wagate: {message}", err=True)
    raise typer.Exit(code=2)


def run(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    try:
        return asyncio.run(make())
    except WagateError as exc:
        fail(str(exc))


def check_database_url(settings: Settings) -> None:
    from wagate.store import driver_url

    try:
        driver_url(settings.resolved_database_url)
    except ConfigError as exc:
        fail(f"WAGATE_DATABASE_URL: {exc}")


def database_failed(exc: StoreUnavailable) -> NoReturn:
    """One line for the operator; the traceback only with --log-level debug."""
    log.debug("the database could not be opened", exc_info=exc)
    fail(f"WAGATE_DATABASE_URL: {exc}")


async def open_gateway() -> Gateway:
    """The gateway for a command; a database URL that cannot work, or a database that cannot be opened, ends the
    command with one line naming WAGATE_DATABASE_URL."""
    from wagate.gateway import Gateway

    settings = settings_from_env()
    check_database_url(settings)
    try:
        return await Gateway.open(settings)
    except StoreUnavailable as exc:
        database_failed(exc)

"""MkDocs hook: the configuration page's table of settings, generated from ``wagate.config.Settings`` at build time.

Every field becomes a row: its environment variable, its type and constraints, its default, its description, and
the ``wagate serve`` option that overrides it, if any. A type or a constraint this hook does not know how to write
fails the build instead of being shown wrongly.
"""

from __future__ import annotations

import types
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import typer.core
import typer.main
from mdtext import code, inline, replace_marker
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from wagate.cli import app as command_line
from wagate.config import Settings, env_name

PAGE = "configuration.md"
MARKER = "<!-- generated: the settings table -->"

_NAMES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
_BOUNDS: tuple[tuple[type, str, str], ...] = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
)


def _choices(values: list[Any]) -> str:
    return "one of " + ", ".join(code(str(v)) for v in values)


def type_text(annotation: Any) -> str:
    """How a setting's type reads: ``integer``, ``secret string``, ``one of `text`, `json```..."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(kinds) != 1:
            raise PluginError(f"settings page: no wording for the type {annotation!r}")
        return type_text(kinds[0])
    if get_origin(annotation) is Literal:
        return _choices(list(get_args(annotation)))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _choices([member.value for member in annotation])
    if annotation is SecretStr:
        return "secret string"
    if annotation in _NAMES:
        return _NAMES[annotation]
    raise PluginError(f"settings page: no wording for the type {annotation!r}")


def constraints_text(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attribute)}")
                break
        else:
            raise PluginError(f"settings page: no wording for the constraint {item!r}")
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed at start"
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, Enum):
        value = value.value
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, Path) and not value.is_absolute():
        value = f"./{value.as_posix()}"
    return code(str(value)) if str(value) else '`""`'


def serve_options() -> dict[str, str]:
    """The options of ``wagate serve``, by the setting each one overrides (it bears the setting's name)."""
    command = typer.main.get_command(command_line)
    if not isinstance(command, typer.core.TyperGroup) or "serve" not in command.commands:
        raise PluginError("settings page: the wagate command has no serve subcommand")
    serve = command.commands["serve"]
    fields = Settings.model_fields
    options = {param.name: param.opts[0] for param in serve.params if param.name in fields}
    unknown = [param.name for param in serve.params if param.name not in fields]
    if unknown:
        raise PluginError(f"settings page: wagate serve options that are no setting: {unknown}")
    return options


def settings_table() -> str:
    options = serve_options()
    rows = [
        "| Variable | Type | Default | What it sets |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        variable = env_name(name)
        if not field.description:
            raise PluginError(f"settings page: {variable} has no description in wagate.config.Settings")
        kind = type_text(field.annotation)
        bounds = constraints_text(field)
        described = inline(field.description)
        if name in options:
            described += f" (`wagate serve {options[name]}`)"
        anchor = f'<span id="{variable.lower()}"></span>'
        rows.append(
            f"| {anchor}{code(variable)} | {kind}{', ' + bounds if bounds else ''} | {default_text(field)} "
            f"| {described} |"
        )
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return replace_marker(markdown, MARKER, settings_table(), PAGE)

"""MkDocs hook: the API reference, generated at build time from the application's own OpenAPI document.

The document is made as ``/openapi.json`` makes it (``create_app(...).openapi()``, over a gateway opened on a
throwaway SQLite database with the default settings), then written out as Markdown: the operations by tag, each with
its parameters, body and answers, then every schema with its fields. The site also carries the document itself, as
``openapi.json``. Nothing is fetched from elsewhere, at build time or when a page is read.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from mdtext import code, inline, replace_marker
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from wagate.api.app import create_app
from wagate.config import Settings
from wagate.crypto.keyring import Keyring
from wagate.gateway import Gateway
from wagate.runtime.node import Node

PAGE = "api.md"
DOCUMENT = "openapi.json"
MARKER = "<!-- generated: the OpenAPI reference -->"
_REF = "#/components/schemas/"

Schema = dict[str, Any]
_document: Schema | None = None


async def _open_and_describe(data_dir: Path) -> Schema:
    # The defaults, not the environment of whoever builds the site: the document is the same on every machine.
    settings = Settings.model_construct(data_dir=data_dir)
    keyring = Keyring({"docs": secrets.token_bytes(32)}, "docs")
    gateway = await Gateway.open(settings, keyring=keyring)
    try:
        return create_app(Node(gateway, supervise=False)).openapi()
    finally:
        await gateway.close()


def openapi_document() -> Schema:
    """The OpenAPI document exactly as a gateway serves it at ``/openapi.json``."""
    with tempfile.TemporaryDirectory(prefix="wagate-docs-") as tmp:
        return asyncio.run(_open_and_describe(Path(tmp)))


def _document_now() -> Schema:
    if _document is None:
        raise PluginError("api page: the OpenAPI document was not made before the pages")
    return _document


# -- schemas as text ------------------------------------------------------------------------------------------------


# The JSON Schema keywords this page writes out (``title`` repeats the name, and is left out). A schema that uses
# another fails the build, rather than lose what that keyword says.
_KEYWORDS = frozenset(
    {
        "$ref", "additionalProperties", "anyOf", "const", "default", "description", "enum", "examples",
        "exclusiveMaximum", "exclusiveMinimum", "format", "items", "maxItems", "maxLength", "maxProperties",
        "maximum", "minItems", "minLength", "minimum", "pattern", "properties", "propertyNames", "required", "title",
        "type",
    }
)  # fmt: skip


def check_keywords(schema: Schema, where: str) -> None:
    """Fail the build on a keyword this page would not show, in ``schema`` or any schema inside it."""
    unknown = sorted(set(schema) - _KEYWORDS)
    if unknown:
        raise PluginError(f"api page: {where} uses {', '.join(unknown)}, which the page does not show")
    inner = [*schema.get("properties", {}).values(), *schema.get("anyOf", ())]
    inner += [
        schema[key] for key in ("items", "additionalProperties", "propertyNames") if isinstance(schema.get(key), dict)
    ]
    for part in inner:
        check_keywords(part, where)


def schema_anchor(name: str) -> str:
    return "schema-" + name.lower()


def operation_anchor(method: str, path: str) -> str:
    return method + "-" + "-".join(re.findall(r"[a-z0-9]+", path.lower()))


def type_text(schema: Schema) -> str:
    """What a schema is, in a few words: ``string``, ``array of [SessionOut](#schema-sessionout)``, ``... or null``."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_REF)
        return f"[{name}](#{schema_anchor(name)})"
    if "anyOf" in schema:
        return " or ".join(type_text(option) for option in schema["anyOf"])
    if "const" in schema:
        return code(json.dumps(schema["const"]))
    if "enum" in schema:
        return "one of " + ", ".join(code(json.dumps(value)) for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return "array of " + type_text(schema.get("items", {}))
    if kind == "object":
        values = schema.get("additionalProperties")
        return "object of " + type_text(values) if isinstance(values, dict) else "object"
    if kind == "string" and "format" in schema:
        return "binary" if schema["format"] == "binary" else f"string ({schema['format']})"
    if isinstance(kind, str):
        return kind
    if not schema:
        return "any"
    raise PluginError(f"api page: no wording for the schema {schema!r}")


def _span(fewest: int | None, most: int | None, unit: str) -> str | None:
    """``2 to 12 items``, ``at most 255 characters``, ``not empty``..., or None when neither bound is set."""
    if fewest is not None and most is not None:
        return f"{fewest} to {most} {unit}"
    if most is not None:
        return f"at most {most} {unit}"
    if fewest is not None:
        return "not empty" if fewest == 1 and unit == "characters" else f"at least {fewest} {unit}"
    return None


def _bounds(schema: Schema) -> list[str]:
    notes = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in schema:
            notes.append(f"{sign} {schema[key]}")
    for low, high, unit in (("minLength", "maxLength", "characters"), ("minItems", "maxItems", "items")):
        if (span := _span(schema.get(low), schema.get(high), unit)) is not None:
            notes.append(span)
    if "maxProperties" in schema:
        notes.append(f"at most {schema['maxProperties']} entries")
    if "pattern" in schema:
        notes.append("matches " + code(schema["pattern"]))
    if "propertyNames" in schema:
        notes.append("names: " + ", ".join(_bounds(schema["propertyNames"])))
    return notes


def _limits(schema: Schema) -> list[str]:
    notes = _bounds(schema)
    for key, each in (("items", "each"), ("additionalProperties", "each value")):
        if isinstance(schema.get(key), dict):
            notes += [f"{each}: {note}" for note in _bounds(schema[key])]
    return notes


def constraints(schema: Schema) -> list[str]:
    """The limits a value must keep, from the schema and from each of its alternatives, then its default."""
    notes = _limits(schema)
    for option in schema.get("anyOf", ()):
        notes += [note for note in _limits(option) if note not in notes]
    if "default" in schema and schema["default"] is not None:
        notes.append("default " + code(json.dumps(schema["default"])))
    if schema.get("examples"):
        notes.append("e.g. " + ", ".join(code(json.dumps(example)) for example in schema["examples"]))
    return notes


def _described(schema: Schema, description: str | None = None) -> str:
    parts = [inline(description or schema.get("description", "")), *constraints(schema)]
    return "; ".join(part for part in parts if part) or " "


# -- the page -------------------------------------------------------------------------------------------------------


def _parameters(operation: Schema) -> list[str]:
    parameters = operation.get("parameters", [])
    if not parameters:
        return []
    lines = ["| Parameter | In | Type | Description |", "| --- | --- | --- | --- |"]
    for parameter in parameters:
        schema = parameter.get("schema", {})
        required = ", required" if parameter.get("required") else ""
        lines.append(
            f"| {code(parameter['name'])} | {parameter['in']}{required} | {type_text(schema)} "
            f"| {_described(schema, parameter.get('description'))} |"
        )
    return [*lines, ""]


def _content(content: dict[str, Schema]) -> str:
    """What a body is: its schema, and its media type unless it is JSON alone."""
    if list(content) == ["application/json"]:
        return type_text(content["application/json"].get("schema", {}))
    return ", or ".join(f"{type_text(media.get('schema', {}))} as {code(kind)}" for kind, media in content.items())


def _body(operation: Schema) -> list[str]:
    body = operation.get("requestBody")
    if body is None:
        return []
    required = "" if body.get("required") else " (optional)"
    return [f"**Request body**{required}: {_content(body['content'])}", ""]


def _responses(operation: Schema) -> list[str]:
    lines = ["| Status | Body | Meaning |", "| --- | --- | --- |"]
    for status, answer in sorted(operation["responses"].items()):
        body = _content(answer.get("content", {})) or "none"
        lines.append(f"| {code(status)} | {body} | {inline(answer.get('description', ''))} |")
    return [*lines, ""]


def _operation(method: str, path: str, operation: Schema) -> list[str]:
    lines = [f"### {code(method.upper() + ' ' + path)} {{ #{operation_anchor(method, path)} }}", ""]
    lines += [inline(operation.get("summary", "")) + ".", ""]
    if operation.get("description"):
        lines += [inline(operation["description"]), ""]
    if "security" in operation:
        lines += ["Authenticated by the `X-Api-Key` header.", ""]
    else:
        lines += ["No API key needed.", ""]
    return lines + _parameters(operation) + _body(operation) + _responses(operation)


def _schema(name: str, schema: Schema) -> list[str]:
    lines = [f"### {name} {{ #{schema_anchor(name)} }}", ""]
    if schema.get("description"):
        lines += [inline(schema["description"]), ""]
    properties: dict[str, Schema] = schema.get("properties", {})
    if not properties:
        return [*lines, f"{type_text({k: v for k, v in schema.items() if k != 'title'})}.", ""]
    required = set(schema.get("required", ()))
    lines += ["| Field | Type | Description |", "| --- | --- | --- |"]
    for field, spec in properties.items():
        need = ", required" if field in required else ""
        lines.append(f"| {code(field)} | {type_text(spec)}{need} | {_described(spec)} |")
    return [*lines, ""]


def _check(document: Schema) -> None:
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        check_keywords(schema, f"the schema {name}")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                check_keywords(parameter.get("schema", {}), where)
            bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
            for media in (media for body in bodies for media in body.get("content", {}).values()):
                check_keywords(media.get("schema", {}), where)


def reference(document: Schema) -> str:
    """The document as Markdown: operations grouped by their first tag (in order of appearance), then schemas."""
    _check(document)
    by_tag: dict[str, list[tuple[str, str, Schema]]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method, path, operation))
    lines: list[str] = []
    for tag, operations in by_tag.items():
        lines += [f"## {inline(tag.capitalize())}", ""]
        for method, path, operation in operations:
            lines += _operation(method, path, operation)
    lines += ["## Schemas", ""]
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        lines += _schema(name, schema)
    return "\n".join(lines)


# -- MkDocs events --------------------------------------------------------------------------------------------------


def on_pre_build(config: MkDocsConfig) -> None:
    global _document
    _document = openapi_document()


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, DOCUMENT, content=json.dumps(_document_now(), indent=2) + "\n"))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return replace_marker(markdown, MARKER, reference(_document_now()), PAGE)

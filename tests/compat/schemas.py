"""JSON Schemas of an OpenAPI document brought to one form, whichever dialect wrote them.

WAHA's document is written by a TypeScript generator in OpenAPI 3.0's manner (`nullable`, `allOf` around a single
`$ref`, `oneOf`); wagate's by pydantic in 3.1's (`anyOf` with `{"type": "null"}`, keywords beside an `anyOf` that
apply to every branch). `Schemas` resolves references and merges `allOf`, and splits a schema into its non-null
variants plus whether null is allowed, so the comparison never has to know who wrote what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

_UNION = ("anyOf", "oneOf")
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


@dataclass(frozen=True, slots=True)
class Variants:
    """One schema as the alternatives it allows: each a resolved schema without null, and whether null is one."""

    options: tuple[Schema, ...]
    nullable: bool

    @property
    def loose(self) -> bool:
        """Nothing said: every value is allowed (`{}`, or only a description or a default)."""
        return any(types(option) is None for option in self.options)


class Schemas:
    """The schemas of one OpenAPI document, reached through `$ref`s to its `components`."""

    def __init__(self, document: Schema) -> None:
        self.document = document

    def resolve(self, schema: Schema, depth: int = 0) -> Schema:
        """The schema with its `$ref` followed and its `allOf` parts merged into one object (siblings win)."""
        if depth > 32:
            raise ValueError(f"$ref chain too deep at {schema!r}")
        if "$ref" in schema:
            target = self._target(schema["$ref"])
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            return self.resolve(target | siblings, depth + 1)
        if "allOf" in schema:
            merged: Schema = {}
            for part in schema["allOf"]:
                merged = _merge(merged, self.resolve(part, depth + 1))
            return _merge(merged, {k: v for k, v in schema.items() if k != "allOf"})
        return schema

    def variants(self, schema: Schema) -> Variants:
        """The non-null alternatives of `schema`, and whether it allows null."""
        options: list[Schema] = []
        nullable = self._collect(self.resolve(schema), options)
        return Variants(tuple(options), nullable)

    def _collect(self, schema: Schema, into: list[Schema]) -> bool:
        nullable = schema.get("nullable") is True or _has_null(schema)
        union = next((k for k in _UNION if k in schema), None)
        if union is None:
            stripped = _without_null(schema)
            if stripped is not None:
                into.append(stripped)
            return nullable
        siblings = {k: v for k, v in schema.items() if k not in _UNION}
        for branch in schema[union]:
            nullable |= self._collect(self.resolve(_merge(self.resolve(branch), siblings)), into)
        return nullable

    def _target(self, ref: str) -> Schema:
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are followed, not {ref!r}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        if not isinstance(node, dict):
            raise ValueError(f"{ref!r} is not a schema")
        return node


def types(schema: Schema) -> frozenset[str] | None:
    """The JSON types a (resolved, null-free) schema allows; None when it does not say."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared}) - {"null"}
    if isinstance(declared, list):
        return frozenset(declared) - {"null"}
    if "properties" in schema or "additionalProperties" in schema:
        return frozenset({"object"})
    if "items" in schema:
        return frozenset({"array"})
    values = enum(schema)
    if values is not None:
        return frozenset(JSON_TYPES[type(value)] for value in values)
    return None


def enum(schema: Schema) -> frozenset[Any] | None:
    """The values a schema is limited to (null left out), or None when it is not limited."""
    if "const" in schema:
        return frozenset({schema["const"]} - {None})
    if "enum" in schema:
        return frozenset(value for value in schema["enum"] if value is not None and not isinstance(value, dict | list))
    return None


def properties(schema: Schema) -> tuple[dict[str, Schema], frozenset[str]]:
    """An object schema's properties and the names it requires (3.0's `required: true` on a property counts)."""
    props: dict[str, Schema] = schema.get("properties", {})
    listed = schema.get("required", [])
    required = set(listed) if isinstance(listed, list) else set()
    required |= {name for name, prop in props.items() if prop.get("required") is True}
    return props, frozenset(required)


def open_object(schema: Schema) -> bool:
    """An object that takes any keys (a free dict), as opposed to one that lists its fields."""
    extra = schema.get("additionalProperties", not schema.get("properties"))
    return extra is not False and not schema.get("properties")


def _has_null(schema: Schema) -> bool:
    declared = schema.get("type")
    in_enum = "enum" in schema and None in schema["enum"]
    return declared == "null" or (isinstance(declared, list) and "null" in declared) or in_enum


def _without_null(schema: Schema) -> Schema | None:
    """The schema with null taken out of its `type`; None when null was all it allowed."""
    declared = schema.get("type")
    if declared == "null" or declared == ["null"]:
        return None
    if isinstance(declared, list) and "null" in declared:
        return schema | {"type": [t for t in declared if t != "null"]}
    return schema


def _merge(base: Schema, extra: Schema) -> Schema:
    merged = base | extra
    if "properties" in base and "properties" in extra:
        merged["properties"] = base["properties"] | extra["properties"]
    if isinstance(base.get("required"), list) and isinstance(extra.get("required"), list):
        merged["required"] = [*base["required"], *(r for r in extra["required"] if r not in base["required"])]
    return merged

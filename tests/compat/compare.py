"""Whether one schema stands in for another, in the direction the data flows.

A request is written by a WAHA client and read by wagate: wagate must take everything WAHA's schema lets a client
send (every field, type, enum value, null where WAHA allows it, WAHA's own examples) and require nothing more. An
answer is written by wagate and read by a WAHA client: it must give every field WAHA's schema lists, of a type and
value WAHA's allows. Where WAHA's schema says nothing (`{}`, an object without fields) nothing more is asked; where
it is precise, so is the comparison. WAHA's document comes from TypeScript, which has one numeric type: its
`number` and wagate's `integer` count as the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tests.compat.schemas import JSON_TYPES, Schema, Schemas, Variants, enum, open_object, properties, types

_MAX_DEPTH = 8


class Flow(Enum):
    """Who writes the data: a WAHA client (a request), or wagate (an answer)."""

    REQUEST = "request"
    ANSWER = "answer"


class Problem(Enum):
    """What is wrong with one place of an operation: how disagreements are counted."""

    MISSING = "missing"
    TYPE = "type differs"
    ENUM = "enum differs"
    NULL = "null differs"
    REQUIRED = "required-ness differs"
    EXTRA_REQUIRED = "required by wagate only"
    EXAMPLE = "WAHA's example refused"
    UNTYPED = "untyped where WAHA's is typed"
    STATUS = "success status differs"
    MEDIA_TYPE = "media type missing"


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One precise difference: where (`request field `text``), what kind, and the words for a reader."""

    place: str
    problem: Problem
    text: str

    @property
    def kind(self) -> str:
        """The place's sort with the problem, e.g. `answer field: missing`: what the report counts."""
        sort = self.place.split(" `", 1)[0]
        return f"{sort}: {self.problem.value}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Comparer:
    """Compares schemas of WAHA's document (`waha`) with those of wagate's (`wagate`)."""

    waha: Schemas
    wagate: Schemas

    def compare(
        self, ours: Schema, theirs: Schema, flow: Flow, place: str, *, optional: bool = False
    ) -> list[Disagreement]:
        """Disagreements of wagate's schema `ours` with WAHA's `theirs` at `place` ("request body", "answer").

        `optional`: WAHA's schema is of an object field it does not require, so an answer may leave it null.
        """
        return self._compare(self.wagate.variants(ours), self.waha.variants(theirs), flow, place, optional, 0)

    def _compare(
        self, ours: Variants, theirs: Variants, flow: Flow, place: str, optional: bool, depth: int
    ) -> list[Disagreement]:
        if theirs.loose:
            return []
        found: list[Disagreement] = []
        if flow is Flow.REQUEST and theirs.nullable and not ours.nullable:
            found.append(Disagreement(place, Problem.NULL, f"{place} refuses null, WAHA's allows it"))
        if flow is Flow.ANSWER and ours.nullable and not (theirs.nullable or optional):
            found.append(Disagreement(place, Problem.NULL, f"{place} may be null, WAHA's never is"))
        # Each value one side may write must be readable by some variant of the other.
        writers, readers = (theirs.options, ours.options) if flow is Flow.REQUEST else (ours.options, theirs.options)
        if writers and not readers:
            return [*found, Disagreement(place, Problem.TYPE, f"{place} is null only")]
        for written in writers:
            tries = [self._variant(written, read, flow, place, depth) for read in readers]
            best = min(tries, key=lambda found_here: len(found_here))
            found.extend(best)
        return _unique(found)

    def _variant(self, written: Schema, read: Schema, flow: Flow, place: str, depth: int) -> list[Disagreement]:
        ours, theirs = (read, written) if flow is Flow.REQUEST else (written, read)
        our_types, their_types = _trusted_types(ours), _trusted_types(theirs)
        if their_types is None:
            return []
        if our_types is None:
            if flow is Flow.REQUEST:
                return []
            return [Disagreement(place, Problem.UNTYPED, f"{place} is untyped, WAHA's is {_names(their_types)}")]
        written_types, read_types = (their_types, our_types) if flow is Flow.REQUEST else (our_types, their_types)
        if not _covers(read_types, written_types):
            text = f"{place} is {_names(our_types)}, WAHA's {_names(their_types)}"
            return [Disagreement(place, Problem.TYPE, text)]
        found = self._enum(ours, theirs, flow, place)
        if flow is Flow.REQUEST:
            found += _examples(ours, theirs, place)
        if depth < _MAX_DEPTH and "object" in our_types and "object" in their_types:
            found += self._fields(ours, theirs, flow, place, depth)
        if depth < _MAX_DEPTH and "array" in our_types and "array" in their_types:
            our_items, their_items = _trusted_items(ours), _trusted_items(theirs)
            at = _child(place, "[]")
            found += self._compare(
                self.wagate.variants(our_items), self.waha.variants(their_items), flow, at, False, depth + 1
            )
        return found

    def _enum(self, ours: Schema, theirs: Schema, flow: Flow, place: str) -> list[Disagreement]:
        our_values, their_values = enum(ours), enum(theirs)
        if flow is Flow.REQUEST and our_values is not None:
            if their_values is None:
                text = f"{place} is limited to {_values(our_values)}, WAHA's is not"
                return [Disagreement(place, Problem.ENUM, text)]
            if their_values - our_values:
                text = f"{place} refuses WAHA's values {_values(their_values - our_values)}"
                return [Disagreement(place, Problem.ENUM, text)]
        if flow is Flow.ANSWER and their_values is not None:
            if our_values is None:
                text = f"{place} is not limited to WAHA's values {_values(their_values)}"
                return [Disagreement(place, Problem.ENUM, text)]
            if our_values - their_values:
                text = f"{place} may be {_values(our_values - their_values)}, outside WAHA's values"
                return [Disagreement(place, Problem.ENUM, text)]
        return []

    def _fields(self, ours: Schema, theirs: Schema, flow: Flow, place: str, depth: int) -> list[Disagreement]:
        our_props, our_required = properties(ours)
        their_props, their_required = properties(theirs)
        found: list[Disagreement] = []
        if flow is Flow.ANSWER and their_props and open_object(ours):
            listed = ", ".join(sorted(their_props))
            return [Disagreement(place, Problem.UNTYPED, f"{place} is a free object, WAHA's has fields {listed}")]
        for name, theirs_field in their_props.items():
            at = _field(place, name)
            if flow is Flow.ANSWER and theirs_field.get("deprecated") is True and name not in their_required:
                continue  # a field WAHA's clients are told to stop reading, and may not get
            if name not in our_props:
                if flow is Flow.ANSWER or not open_object(ours):
                    found.append(Disagreement(at, Problem.MISSING, f"{at} missing"))
                continue
            optional = name not in their_required
            found += self._compare(
                self.wagate.variants(our_props[name]), self.waha.variants(theirs_field), flow, at, optional, depth + 1
            )
            if flow is Flow.REQUEST and name in our_required and optional:
                found.append(Disagreement(at, Problem.REQUIRED, f"{at} required, WAHA's is optional"))
            if flow is Flow.ANSWER and name in their_required and name not in our_required:
                found.append(Disagreement(at, Problem.REQUIRED, f"{at} may be absent, WAHA always gives it"))
        if flow is Flow.REQUEST:
            for name in sorted(our_required - set(their_props)):
                at = _field(place, name)
                found.append(Disagreement(at, Problem.EXTRA_REQUIRED, f"{at} required, WAHA has no such field"))
        return found


def _trusted_types(schema: Schema) -> frozenset[str] | None:
    """A schema's types, unless its own default contradicts them (`type: object, default: "audio/ogg"`): WAHA's
    generator writes such slips, and the default says what is really sent."""
    declared = types(schema)
    default = schema.get("default")
    if declared is None or default is None or isinstance(default, dict | list):
        return declared
    actual = frozenset({JSON_TYPES[type(default)]})
    return declared if _covers(declared, actual) else actual


def _trusted_items(schema: Schema) -> Schema:
    """An array's item schema, unless the array's own example contradicts it (`items: {type: object}` with the
    example `["message", "session.status"]`): the generator's slip again, and the example says what is sent."""
    items: Schema = schema.get("items", {})
    example = schema.get("example")
    declared = types(items)
    if declared is None or not isinstance(example, list) or not example or "$ref" in items:
        return items
    actual = frozenset(JSON_TYPES[type(value)] for value in example)
    if len(actual) != 1 or _covers(declared, actual):
        return items
    (kind,) = actual
    return {"type": kind}


def _covers(reader: frozenset[str], written: frozenset[str]) -> bool:
    numeric = {"number", "integer"}
    return all(t in reader or (t in numeric and reader & numeric) for t in written)


def _examples(ours: Schema, theirs: Schema, place: str) -> list[Disagreement]:
    """WAHA's own example and default for a field are values its clients send: wagate's checks must take them."""
    samples = [theirs[k] for k in ("example", "default") if isinstance(theirs.get(k), str | int | float)]
    for sample in samples:
        if not _accepts(ours, sample):
            return [Disagreement(place, Problem.EXAMPLE, f"{place} refuses WAHA's example {sample!r}")]
    return []


def _accepts(schema: Schema, value: str | int | float) -> bool:
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if pattern is not None and re.search(pattern, value) is None:
            return False
        return bool(schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)))
    if isinstance(value, bool):
        return True
    low, high = schema.get("minimum"), schema.get("maximum")
    return bool((low is None or value >= low) and (high is None or value <= high))


def _field(place: str, name: str) -> str:
    return _child(place, f".{name}")


def _child(place: str, suffix: str) -> str:
    """`request body` + `.text` is `request field `text``; `answer field `me`` + `.id` is `answer field `me.id``."""
    if place.endswith("`"):
        return f"{place[:-1]}{suffix}`"
    return f"{place.split()[0]} field `{suffix.lstrip('.')}`"


def _names(found: frozenset[str]) -> str:
    return "/".join(sorted(found))


def _values(found: frozenset[Any]) -> str:
    return "{" + ", ".join(sorted(repr(v) for v in found)) + "}"


def _unique(found: list[Disagreement]) -> list[Disagreement]:
    return list(dict.fromkeys(found))

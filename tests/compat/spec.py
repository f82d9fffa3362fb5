"""WAHA's OpenAPI document beside wagate's, operation by operation.

Operations are paired by method and path, a path parameter matched by its position and not its name (WAHA's
`/api/{session}/chats/{chatId}` is wagate's `/api/{name}/chats/{chat_id}`). Of each pair the comparison reads the
path and query parameters, the JSON request body, and the success answer: its status, its media types and its JSON
schema (see `tests.compat.compare` for what agreeing means in each direction). `compare_documents` gives a `Report`
that lists what only one side offers and every disagreement of what both offer.

WAHA's document also declares its webhook events (OpenAPI 3.1 `webhooks`, one per event name): an event wagate's
document declares under the same name is compared as an answer is, since wagate writes it and a WAHA handler reads
it. Those that agree are named `WEBHOOK <event>`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.compat.compare import Comparer, Disagreement, Flow, Problem
from tests.compat.schemas import Schema, Schemas

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_PARAM = re.compile(r"\{[^}/]*\}")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path of a document, with the operation object (path-level parameters folded in)."""

    method: str
    path: str
    spec: Schema

    @property
    def key(self) -> tuple[str, str]:
        """Method and path with every parameter blanked: what pairs the two documents' operations."""
        return self.method, _PARAM.sub("{}", self.path)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


@dataclass(frozen=True, slots=True)
class Pair:
    """An operation both documents offer, with the disagreements of wagate's with WAHA's."""

    waha: Operation
    wagate: Operation
    disagreements: tuple[Disagreement, ...]

    @property
    def agrees(self) -> bool:
        return not self.disagreements


@dataclass(frozen=True, slots=True)
class Report:
    """The whole comparison: pairs, and what only one side offers."""

    waha_version: str
    pairs: tuple[Pair, ...]
    waha_only: tuple[Operation, ...]
    wagate_only: tuple[Operation, ...]
    general: tuple[str, ...] = field(default=())
    events: tuple[Pair, ...] = field(default=())
    waha_only_events: tuple[str, ...] = field(default=())

    @property
    def waha_count(self) -> int:
        return len(self.pairs) + len(self.waha_only)

    @property
    def agreeing(self) -> frozenset[str]:
        """WAHA's operations (`POST /api/sendText`) that wagate offers with no disagreement.

        None while a general disagreement stands (the API key's header): then no WAHA client gets through at all.
        """
        if self.general:
            return frozenset()
        return frozenset(str(pair.waha) for pair in self.pairs if pair.agrees)

    @property
    def agreeing_events(self) -> frozenset[str]:
        """WAHA's webhook events (`WEBHOOK message`) that wagate declares with WAHA's envelope and payload."""
        if self.general:
            return frozenset()
        return frozenset(f"WEBHOOK {pair.waha.path}" for pair in self.events if pair.agrees)

    def kinds(self) -> Counter[str]:
        """How often each kind of disagreement occurs, over every pair of operations and of events."""
        return Counter(d.kind for pair in (*self.pairs, *self.events) for d in pair.disagreements)

    def render(self) -> str:
        """The report for a reader: the counts, then each pair's disagreements, then what one side only offers."""
        lines = [
            f"WAHA {self.waha_version}: {self.waha_count} operations; wagate offers {len(self.pairs)} at the same"
            f" method and path; {len(self.agreeing)} fully agree; {len(self.wagate_only)} are wagate's own.",
            f"WAHA's webhooks: {len(self.events) + len(self.waha_only_events)} events; wagate declares"
            f" {len(self.events)} of them; {len(self.agreeing_events)} agree.",
            *(f"general: {text}" for text in self.general),
            "",
            "Kinds of disagreement:",
            *(f"  {count:4d}  {kind}" for kind, count in self.kinds().most_common()),
            "",
            "Offered by both:",
        ]
        for pair in self.pairs:
            mark = "agrees" if pair.agrees else f"{len(pair.disagreements)} disagreements"
            lines.append(f"  {pair.waha} (wagate: {pair.wagate.path}): {mark}")
            lines.extend(f"    - {d}" for d in pair.disagreements)
        lines += ["", "Only WAHA:", *(f"  {op}" for op in self.waha_only)]
        lines += ["", "Only wagate:", *(f"  {op}" for op in self.wagate_only)]
        lines += ["", "Webhook events declared by both:"]
        for pair in self.events:
            mark = "agrees" if pair.agrees else f"{len(pair.disagreements)} disagreements"
            lines.append(f"  {pair.waha.path}: {mark}")
            lines.extend(f"    - {d}" for d in pair.disagreements)
        lines += ["", f"Webhook events only WAHA declares: {', '.join(self.waha_only_events) or 'none'}"]
        return "\n".join(lines)


def operations(document: Schema) -> list[Operation]:
    """Every operation of a document, in its order."""
    found = []
    for path, item in document.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                spec = dict(item[method])
                spec["parameters"] = [*shared, *spec.get("parameters", [])]
                found.append(Operation(method, path, spec))
    return found


def webhooks(document: Schema) -> dict[str, Operation]:
    """The webhook events a document declares, by name: each the `post` that delivers it."""
    declared = document.get("webhooks", {})
    return {name: Operation("post", name, item["post"]) for name, item in declared.items() if "post" in item}


def compare_documents(waha: Schema, wagate: Schema) -> Report:
    """Pair the two documents' operations, and their webhook events, and compare each pair."""
    comparer = Comparer(Schemas(waha), Schemas(wagate))
    ours = _by_key(operations(wagate))
    pairs, waha_only = [], []
    for theirs in operations(waha):
        mine = ours.pop(theirs.key, None)
        if mine is None:
            waha_only.append(theirs)
        else:
            pairs.append(Pair(theirs, mine, tuple(compare_operations(comparer, mine, theirs))))
    events, waha_only_events = compare_events(comparer, waha, wagate)
    return Report(
        waha_version=str(waha.get("info", {}).get("version", "?")),
        pairs=tuple(pairs),
        waha_only=tuple(waha_only),
        wagate_only=tuple(ours.values()),
        general=tuple(_security(waha, wagate)),
        events=tuple(events),
        waha_only_events=tuple(waha_only_events),
    )


def compare_events(comparer: Comparer, waha: Schema, wagate: Schema) -> tuple[list[Pair], list[str]]:
    """The webhook events both documents declare, compared; and the names of those only WAHA's declares."""
    ours = webhooks(wagate)
    pairs, waha_only = [], []
    for name, theirs in webhooks(waha).items():
        if name in ours:
            pairs.append(Pair(theirs, ours[name], tuple(_event(comparer, ours[name], theirs))))
        else:
            waha_only.append(name)
    return pairs, waha_only


def compare_operations(comparer: Comparer, ours: Operation, theirs: Operation) -> list[Disagreement]:
    """Every disagreement of wagate's operation with WAHA's: parameters, request body, then the answer."""
    found = _path_parameters(comparer, ours, theirs)
    found += _query_parameters(comparer, ours, theirs)
    found += _request_body(comparer, ours, theirs)
    found += _answer(comparer, ours, theirs)
    return found


def _parameters(op: Operation, where: str) -> dict[str, Schema]:
    return {p["name"]: p for p in op.spec["parameters"] if p.get("in") == where}


def _path_parameters(comparer: Comparer, ours: Operation, theirs: Operation) -> list[Disagreement]:
    our_params, their_params = _parameters(ours, "path"), _parameters(theirs, "path")
    found = []
    for our_name, their_name in zip(_PARAM.findall(ours.path), _PARAM.findall(theirs.path), strict=True):
        place = f"path parameter `{their_name[1:-1]}`"
        mine, theirs_param = our_params.get(our_name[1:-1], {}), their_params.get(their_name[1:-1], {})
        found += comparer.compare(mine.get("schema", {}), theirs_param.get("schema", {}), Flow.REQUEST, place)
    return found


def _query_parameters(comparer: Comparer, ours: Operation, theirs: Operation) -> list[Disagreement]:
    our_params, their_params = _parameters(ours, "query"), _parameters(theirs, "query")
    found = []
    for name, param in their_params.items():
        place = f"query parameter `{name}`"
        if name not in our_params:
            found.append(Disagreement(place, Problem.MISSING, f"{place} missing"))
            continue
        mine = our_params[name]
        found += comparer.compare(mine.get("schema", {}), param.get("schema", {}), Flow.REQUEST, place)
        if mine.get("required") and not param.get("required"):
            found.append(Disagreement(place, Problem.REQUIRED, f"{place} required, WAHA's is optional"))
    for where in ("query", "header"):
        for name, mine in _parameters(ours, where).items():
            if mine.get("required") and (where == "header" or name not in their_params):
                place = f"{where} parameter `{name}`"
                found.append(Disagreement(place, Problem.EXTRA_REQUIRED, f"{place} required, WAHA has none"))
    return found


def _request_body(comparer: Comparer, ours: Operation, theirs: Operation) -> list[Disagreement]:
    mine, their_body = ours.spec.get("requestBody"), theirs.spec.get("requestBody")
    place = "request body"
    if their_body is None:
        if mine is not None and mine.get("required"):
            return [Disagreement(place, Problem.EXTRA_REQUIRED, f"{place} required, WAHA sends none")]
        return []
    their_content: dict[str, Any] = their_body.get("content", {})
    our_content: dict[str, Any] = (mine or {}).get("content", {})
    found = []
    for media_type, their_media in their_content.items():
        if media_type not in our_content:
            found.append(Disagreement(place, Problem.MEDIA_TYPE, f"{place} `{media_type}` not taken"))
            continue
        ours_schema = our_content[media_type].get("schema", {})
        found += comparer.compare(ours_schema, their_media.get("schema", {}), Flow.REQUEST, place)
    if mine is not None and mine.get("required") and not their_body.get("required"):
        found.append(Disagreement(place, Problem.REQUIRED, f"{place} required, WAHA's is optional"))
    return found


def _success(op: Operation) -> tuple[str, Schema] | None:
    answers = sorted((status, answer) for status, answer in op.spec.get("responses", {}).items() if status[0] == "2")
    return answers[0] if answers else None


def _answer(comparer: Comparer, ours: Operation, theirs: Operation) -> list[Disagreement]:
    their_success, our_success = _success(theirs), _success(ours)
    if their_success is None:
        return []
    status, their_answer = their_success
    if our_success is None:
        return [Disagreement("status", Problem.STATUS, f"no success answer, WAHA's is {status}")]
    our_statuses = sorted(s for s in ours.spec["responses"] if s[0] == "2")
    found = []
    if status not in our_statuses:
        text = f"answer {'/'.join(our_statuses)} vs WAHA {status}"
        found.append(Disagreement("status", Problem.STATUS, text))
    our_answer = ours.spec["responses"].get(status, our_success[1])
    our_content: dict[str, Any] = our_answer.get("content", {})
    for media_type, their_media in their_answer.get("content", {}).items():
        if media_type not in our_content:
            if not comparer.waha.variants(their_media.get("schema", {})).loose:
                found.append(Disagreement("answer", Problem.MEDIA_TYPE, f"answer `{media_type}` not given"))
            continue
        ours_schema = our_content[media_type].get("schema", {})
        if media_type == JSON:
            found += comparer.compare(ours_schema, their_media.get("schema", {}), Flow.ANSWER, "answer")
    return found


def _event(comparer: Comparer, ours: Operation, theirs: Operation) -> list[Disagreement]:
    """An event's body is wagate's to write and a WAHA handler's to read: compared as an answer is."""
    their_schema = theirs.spec.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema", {})
    our_content = ours.spec.get("requestBody", {}).get("content", {})
    if JSON not in our_content:
        return [Disagreement("event", Problem.MEDIA_TYPE, f"event `{JSON}` not declared")]
    return comparer.compare(our_content[JSON].get("schema", {}), their_schema, Flow.ANSWER, "event")


def _by_key(found: list[Operation]) -> dict[tuple[str, str], Operation]:
    keyed: dict[tuple[str, str], Operation] = {}
    for op in found:
        if op.key in keyed:
            raise ValueError(f"{op} and {keyed[op.key]} cannot be told apart by position")
        keyed[op.key] = op
    return keyed


def _security(waha: Schema, wagate: Schema) -> list[str]:
    """WAHA's clients send their key in WAHA's API key header: wagate must read the same header."""

    def headers(document: Schema) -> set[str]:
        schemes = document.get("components", {}).get("securitySchemes", {}).values()
        return {s["name"].lower() for s in schemes if s.get("type") == "apiKey" and s.get("in") == "header"}

    missing = headers(waha) - headers(wagate)
    return [f"API key header `{name}` not read by wagate" for name in sorted(missing)]

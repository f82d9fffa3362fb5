"""wagate's OpenAPI document beside WAHA's, operation by operation: the report, and a ratchet on what agrees.

The report (run with `-s` to read it) counts WAHA's operations, those wagate offers at the same method and path, and
those that fully agree, likewise WAHA's webhook events, then lists every disagreement. The operations (and events,
as `WEBHOOK <event>`) recorded in `tests/data/waha/agreeing.txt` must keep agreeing: the list grows as wagate takes
WAHA's shapes, never shrinks.
The tests after it show on small hand-made documents that the comparison finds what it claims to find.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.compat.compare import Problem
from tests.compat.spec import Report, compare_documents
from tests.support.builders import make_settings
from wagate.api.app import create_app
from wagate.gateway import Gateway
from wagate.runtime.node import Node

DATA = Path(__file__).parent.parent / "data" / "waha"
WAHA_VERSION = "2026.7.2"


@pytest.fixture(scope="module")
def wagate_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = make_settings(tmp_path_factory.mktemp("openapi"))
    gateway = asyncio.run(Gateway.open(settings))
    try:
        document: dict[str, Any] = create_app(Node(gateway)).openapi()
    finally:
        asyncio.run(gateway.close())
    return document


@pytest.fixture(scope="module")
def waha_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / f"openapi-{WAHA_VERSION}.json").read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def report(waha_document: dict[str, Any], wagate_document: dict[str, Any]) -> Report:
    return compare_documents(waha_document, wagate_document)


def recorded() -> set[str]:
    lines = (DATA / "agreeing.txt").read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_the_operations_that_agreed_with_waha_still_do(report: Report) -> None:
    print()
    print(report.render())
    assert report.waha_version == WAHA_VERSION
    assert report.waha_count == 164
    assert len(report.events) + len(report.waha_only_events) == 29
    agreeing = report.agreeing | report.agreeing_events
    lost = recorded() - agreeing
    assert not lost, f"no longer agree with WAHA {WAHA_VERSION}: {sorted(lost)}"
    gained = agreeing - recorded()
    if gained:
        print(f"\nagree now, to record in {DATA / 'agreeing.txt'}: {sorted(gained)}")


def test_the_recorded_operations_are_waha_s(report: Report) -> None:
    """A recorded line that names no WAHA operation would hold nothing up."""
    waha = {str(pair.waha) for pair in report.pairs} | {str(op) for op in report.waha_only}
    events = {pair.waha.path for pair in report.events} | set(report.waha_only_events)
    assert recorded() <= waha | {f"WEBHOOK {event}" for event in events}


def test_waha_s_document_agrees_with_itself_in_full(waha_document: dict[str, Any]) -> None:
    """Every construct WAHA's document uses is read the same on both sides: nothing is found where nothing differs."""
    report = compare_documents(waha_document, waha_document)
    assert [f"{pair.waha}: {d}" for pair in (*report.pairs, *report.events) for d in pair.disagreements] == []
    assert len(report.agreeing) == 164
    assert len(report.agreeing_events) == 29


def test_wagate_s_document_agrees_with_itself_in_full(wagate_document: dict[str, Any]) -> None:
    report = compare_documents(wagate_document, wagate_document)
    assert [f"{pair.waha}: {d}" for pair in report.pairs for d in pair.disagreements] == []
    assert not report.waha_only
    assert not report.wagate_only


# The comparison itself, on documents small enough to read.

ITEM = {"type": "object", "properties": {"id": {"type": "string"}}}


def document(path: str, method: str, operation: dict[str, Any], **schemas: Any) -> dict[str, Any]:
    return {"info": {"version": "t"}, "paths": {path: {method: operation}}, "components": {"schemas": schemas}}


def waha_send() -> dict[str, Any]:
    """WAHA's manner: `allOf` around a `$ref`, `nullable`, `number`, an enum, an example."""
    return document(
        "/api/sendText",
        "post",
        {
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Send"}}}},
            "responses": {"201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Msg"}}}}},
        },
        Send={
            "type": "object",
            "properties": {
                "chatId": {"type": "string", "example": "111@c.us"},
                "text": {"type": "string"},
                "linkPreview": {"type": "boolean", "default": True},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "reply_to": {"type": "string", "nullable": True},
            },
            "required": ["chatId", "text"],
        },
        Msg={
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "timestamp": {"type": "number"},
                "ack": {"enum": [0, 1, 2], "type": "number"},
                "media": {"allOf": [{"$ref": "#/components/schemas/Media"}]},
            },
            "required": ["id", "timestamp"],
        },
        Media={"type": "object", "properties": {"url": {"type": "string"}}},
    )


def wagate_send() -> dict[str, Any]:
    """The same contract in pydantic's manner: `anyOf` with null, `integer`, keywords beside `anyOf`."""
    return document(
        "/api/sendText",
        "post",
        {
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/SendText"}}}},
            "responses": {
                "201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Out"}}}},
                "422": {"content": {"application/json": {"schema": {}}}},
            },
        },
        SendText={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "chatId": {"type": "string", "pattern": "^[0-9]+(@c\\.us)?$"},
                "text": {"type": "string", "minLength": 1},
                "linkPreview": {"type": "boolean", "default": True},
                "tags": {"type": "array", "items": {"enum": ["a", "b", "c"], "type": "string"}},
                "reply_to": {"anyOf": [{"type": "string"}, {"type": "null"}], "maxLength": 64},
            },
            "required": ["chatId", "text"],
        },
        Out={
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "timestamp": {"type": "integer"},
                "ack": {"type": "integer", "enum": [0, 1]},
                "media": {"anyOf": [{"$ref": "#/components/schemas/MediaOut"}, {"type": "null"}]},
                "extra": {"type": "string"},
            },
            "required": ["id", "timestamp", "ack"],
        },
        MediaOut={"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
    )


def found(waha: dict[str, Any], wagate: dict[str, Any]) -> list[str]:
    (pair,) = compare_documents(waha, wagate).pairs
    return [str(d) for d in pair.disagreements]


def op(doc: dict[str, Any]) -> dict[str, Any]:
    (item,) = doc["paths"].values()
    (operation,) = item.values()
    result: dict[str, Any] = operation
    return result


def test_the_same_contract_in_either_dialect_agrees() -> None:
    report = compare_documents(waha_send(), wagate_send())
    assert [str(d) for p in report.pairs for d in p.disagreements] == []
    assert report.agreeing == {"POST /api/sendText"}
    assert compare_documents(waha_send(), waha_send()).agreeing == {"POST /api/sendText"}


def test_a_missing_request_field_is_found() -> None:
    wagate = wagate_send()
    del wagate["components"]["schemas"]["SendText"]["properties"]["linkPreview"]
    assert found(waha_send(), wagate) == ["request field `linkPreview` missing"]


def test_a_wrong_success_status_is_found() -> None:
    wagate = wagate_send()
    responses = op(wagate)["responses"]
    responses["200"] = responses.pop("201")
    assert found(waha_send(), wagate) == ["answer 200 vs WAHA 201"]


def test_a_wrong_type_is_found_in_either_direction() -> None:
    wagate = wagate_send()
    schemas = wagate["components"]["schemas"]
    schemas["SendText"]["properties"]["linkPreview"] = {"type": "string"}
    schemas["Out"]["properties"]["timestamp"] = {"type": "string"}
    assert found(waha_send(), wagate) == [
        "request field `linkPreview` is string, WAHA's boolean",
        "answer field `timestamp` is string, WAHA's number",
    ]


def test_what_a_waha_client_reads_must_be_given_as_waha_gives_it() -> None:
    wagate = wagate_send()
    out = wagate["components"]["schemas"]["Out"]
    del out["properties"]["id"]
    out["properties"]["ack"] = {"type": "integer", "enum": [0, 1, 7]}
    out["properties"]["timestamp"] = {"anyOf": [{"type": "number"}, {"type": "null"}]}
    out["properties"]["media"] = {"type": "object", "additionalProperties": True}
    assert found(waha_send(), wagate) == [
        "answer field `id` missing",
        "answer field `timestamp` may be null, WAHA's never is",
        "answer field `ack` may be {7}, outside WAHA's values",
        "answer field `media` is a free object, WAHA's has fields url",
    ]


def test_what_a_waha_client_sends_must_be_taken() -> None:
    wagate = wagate_send()
    send = wagate["components"]["schemas"]["SendText"]
    send["properties"]["chatId"]["pattern"] = "^[0-9]+@s\\.whatsapp\\.net$"
    send["properties"]["tags"]["items"]["enum"] = ["a"]
    send["properties"]["reply_to"] = {"type": "string"}
    send["properties"]["priority"] = {"type": "integer"}
    send["required"] = ["chatId", "text", "linkPreview", "priority"]
    assert found(waha_send(), wagate) == [
        "request field `chatId` refuses WAHA's example '111@c.us'",
        "request field `linkPreview` required, WAHA's is optional",
        "request field `tags[]` refuses WAHA's values {'b'}",
        "request field `reply_to` refuses null, WAHA's allows it",
        "request field `priority` required, WAHA has no such field",
    ]


def test_path_parameters_pair_by_position_and_query_parameters_by_name() -> None:
    def chats(path: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        return document(path, "get", {"parameters": params, "responses": {"200": {"description": ""}}})

    session = {"in": "path", "required": True, "schema": {"default": "default"}}
    limit = {"name": "limit", "in": "query", "schema": {"type": "number"}}
    waha = chats("/api/{session}/chats", [{"name": "session", **session}, limit])
    wagate = chats("/api/{name}/chats", [{"name": "name", **session, "schema": {"type": "string"}}])
    report = compare_documents(waha, wagate)
    assert [str(pair.waha) for pair in report.pairs] == ["GET /api/{session}/chats"]
    assert found(waha, wagate) == ["query parameter `limit` missing"]
    op(wagate)["parameters"].append({"name": "cursor", "in": "query", "required": True, "schema": {}})
    op(wagate)["parameters"].append(limit)
    assert found(waha, wagate) == ["query parameter `cursor` required, WAHA has none"]


def test_a_loose_waha_answer_asks_only_for_the_status() -> None:
    untyped: list[dict[str, Any]] = [{"description": ""}, {"content": {"application/json": {"schema": {}}}}]
    for loose in untyped:
        waha = document("/ping", "get", {"responses": {"200": loose}})
        wagate = document("/ping", "get", {"responses": {"200": {"content": {"application/json": {"schema": {}}}}}})
        assert found(waha, wagate) == []
        op(wagate)["responses"] = {"204": {"description": ""}}
        assert found(waha, wagate) == ["answer 204 vs WAHA 200"]


def test_an_object_answer_is_not_an_array_and_media_types_count() -> None:
    def listing(schema: dict[str, Any], media_type: str = "application/json") -> dict[str, Any]:
        answer = {"content": {media_type: {"schema": schema}}}
        return document("/api/{s}/chats", "get", {"responses": {"200": answer}})

    array = {"type": "array", "items": ITEM}
    waha = listing(array)
    assert found(waha, listing({"type": "object", "properties": {"items": {}}})) == ["answer is object, WAHA's array"]
    assert found(waha, listing(array, "image/png")) == ["answer `application/json` not given"]


def test_the_report_lists_what_one_side_only_offers_and_counts_kinds() -> None:
    waha, wagate = waha_send(), wagate_send()
    waha["paths"]["/ping"] = {"get": {"responses": {"200": {"description": ""}}}}
    wagate["paths"]["/api/tenants"] = {"get": {"responses": {"200": {"description": ""}}}}
    del wagate["components"]["schemas"]["Out"]["properties"]["id"]
    report = compare_documents(waha, wagate)
    assert [str(o) for o in report.waha_only] == ["GET /ping"]
    assert [str(o) for o in report.wagate_only] == ["GET /api/tenants"]
    assert report.waha_count == 2
    assert report.agreeing == frozenset()
    assert report.kinds() == {f"answer field: {Problem.MISSING.value}": 1}
    assert "answer field `id` missing" in report.render()


def test_each_of_waha_s_alternatives_must_be_taken() -> None:
    """WAHA's `file` is a URL or base64 data (`oneOf`): wagate's one schema must take both."""

    def send_image(file: dict[str, Any], **schemas: Any) -> dict[str, Any]:
        body = {"type": "object", "properties": {"file": file}, "required": ["file"]}
        operation = {
            "requestBody": {"content": {"application/json": {"schema": body}}},
            "responses": {"201": {"content": {"application/json": {"schema": {"type": "object"}}}}},
        }
        return document("/api/sendImage", "post", operation, **schemas)

    url, data = {"url": {"type": "string"}}, {"data": {"type": "string"}}
    remote: dict[str, Any] = {"type": "object", "properties": url, "required": ["url"]}
    binary: dict[str, Any] = {"type": "object", "properties": data, "required": ["data"]}
    waha = send_image(
        {"oneOf": [{"$ref": "#/components/schemas/R"}, {"$ref": "#/components/schemas/B"}]}, R=remote, B=binary
    )
    either = {"type": "object", "additionalProperties": False, "properties": url | data}
    assert found(waha, send_image(either)) == []
    assert found(waha, send_image(remote | {"additionalProperties": False})) == [
        "request field `file.data` missing",
        "request field `file.url` required, WAHA has no such field",
    ]


def test_a_waha_type_its_own_default_contradicts_gives_way_to_the_default() -> None:
    """WAHA's generator writes `type: object` for some strings; their default says what clients send."""

    def voice(mimetype: dict[str, Any]) -> dict[str, Any]:
        body = {"type": "object", "properties": {"mimetype": mimetype}}
        operation = {"requestBody": {"content": {"application/json": {"schema": body}}}, "responses": {}}
        return document("/api/sendVoice", "post", operation)

    waha = voice({"type": "object", "default": "audio/ogg; codecs=opus"})
    assert found(waha, voice({"type": "string"})) == []
    assert found(waha, voice({"type": "integer"})) == ["request field `mimetype` is integer, WAHA's string"]


def test_array_items_its_own_example_contradicts_give_way_to_the_example() -> None:
    """WAHA's `WebhookConfig.events` says `items: {type: object}` beside the example `["message", ...]`."""

    def hook(events: dict[str, Any]) -> dict[str, Any]:
        body = {"type": "object", "properties": {"events": events}}
        operation = {"requestBody": {"content": {"application/json": {"schema": body}}}, "responses": {}}
        return document("/api/sessions", "post", operation)

    waha = hook({"type": "array", "items": {"type": "object"}, "example": ["message", "session.status"]})
    assert found(waha, hook({"type": "array", "items": {"type": "string"}})) == []
    assert found(waha, hook({"type": "array", "items": {"type": "integer"}})) == [
        "request field `events[]` is integer, WAHA's string"
    ]


def test_no_operation_agrees_while_wagate_reads_another_key_header() -> None:
    waha, wagate = waha_send(), wagate_send()
    key = {"type": "apiKey", "in": "header", "name": "X-Api-Key"}
    waha["components"]["securitySchemes"] = {"api_key": key}
    wagate["components"]["securitySchemes"] = {"key": key | {"name": "x-api-key"}}
    assert compare_documents(waha, wagate).agreeing == {"POST /api/sendText"}
    wagate["components"]["securitySchemes"] = {"key": key | {"name": "Authorization"}}
    report = compare_documents(waha, wagate)
    assert report.general == ("API key header `x-api-key` not read by wagate",)
    assert report.agreeing == frozenset()


def test_a_webhook_event_is_compared_as_an_answer() -> None:
    """wagate writes the event, a WAHA handler reads `event`, `payload.body`, `payload.from`."""

    def declaring(payload: dict[str, Any] | None) -> dict[str, Any]:
        doc = waha_send()
        if payload is not None:
            envelope = {"type": "object", "properties": {"event": {"type": "string"}, "payload": payload}}
            body = {"content": {"application/json": {"schema": envelope}}}
            doc["webhooks"] = {"message": {"post": {"requestBody": body, "responses": {"200": {}}}}}
        return doc

    text = {"type": "string"}
    waha = declaring({"type": "object", "properties": {"body": text, "from": text}, "required": ["body"]})
    report = compare_documents(waha, declaring(None))
    assert report.waha_only_events == ("message",)
    assert report.agreeing_events == frozenset()
    report = compare_documents(waha, declaring({"type": "object", "properties": {"text": text}}))
    assert [str(d) for p in report.events for d in p.disagreements] == [
        "event field `payload.body` missing",
        "event field `payload.from` missing",
    ]
    assert report.kinds()[f"event field: {Problem.MISSING.value}"] == 2
    report = compare_documents(waha, declaring({"type": "object", "properties": {"body": text, "from": text}}))
    assert [str(d) for p in report.events for d in p.disagreements] == [
        "event field `payload.body` may be absent, WAHA always gives it"
    ]
    report = compare_documents(waha, waha)
    assert report.agreeing_events == {"WEBHOOK message"}
    assert "Webhook events only WAHA declares: none" in report.render()


# The one operation offered in a shape of its own, and why: the compatibility issue asks for the groups as an array
# (what WAHA's GOWS engine answers), where WAHA's document declares a free object (its NOWEB engine's answer).
DIFFERS_ON_PURPOSE = {"GET /api/{session}/groups"}


def test_every_operation_offered_agrees_with_waha_but_the_one_on_purpose(report: Report) -> None:
    assert {str(p.waha) for p in report.pairs if not p.agrees} == DIFFERS_ON_PURPOSE


DOCS = Path(__file__).parent.parent.parent / "docs" / "waha.md"
_OPERATION = re.compile(r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`]*)`")


def _section(text: str, title: str) -> set[str]:
    """The operations named in one ``## title`` section of the page."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return set(_OPERATION.findall(text[start : end if end != -1 else None]))


def test_the_coming_from_waha_page_tells_what_the_comparison_finds(report: Report) -> None:
    """docs/waha.md names every operation where the comparison puts it: agreeing, offered in another shape, or not
    offered (each with its reason), and gives the count of those that agree."""
    text = DOCS.read_text(encoding="utf-8")
    assert _section(text, "What agrees with WAHA") == report.agreeing
    assert _section(text, "Offered, not yet in WAHA's shape") == {str(p.waha) for p in report.pairs if not p.agrees}
    assert _section(text, "Not offered yet") == {str(op) for op in report.waha_only}
    assert f"**{len(report.agreeing)}** of WAHA's {report.waha_count} operations" in text

"""The OpenAPI document says what each route answers and takes: every error in one shape, the QR code's PNG, the
patterns of ids, chat ids and cursors, and forms the checks really take (schemathesis tries them all end to end)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import EmailStr, TypeAdapter, ValidationError

from tests.support.builders import make_settings
from wagate.api.app import create_app
from wagate.api.cursors import ID_CURSOR, TIME_ID_CURSOR, TIME_SEQ_CURSOR
from wagate.config import ENGINE_NAMES
from wagate.domain.events import parse_types
from wagate.domain.messages import CHAT_ID_PATTERN
from wagate.domain.webhooks import custom_headers
from wagate.gateway import Gateway
from wagate.ids import API_KEY_ID_PATTERN, BACKUP_ID_PATTERN, TENANT_ID_PATTERN, WEBHOOK_ID_PATTERN
from wagate.runtime.node import Node

ERROR = {"$ref": "#/components/schemas/ErrorOut"}
OPEN = {"/health", "/ping", "/ready", "/metrics", "/api/dashboard/config"}  # no key needed
IDEMPOTENT = {("delete", "/api/sessions/{name}")}  # as WAHA's: deleting what is not there is done, not a 404


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    settings = make_settings(tmp)
    gateway = asyncio.run(Gateway.open(settings))
    try:
        doc: dict[str, Any] = create_app(Node(gateway)).openapi()
    finally:
        asyncio.run(gateway.close())
    return doc


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def parameter(op: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p for p in op["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found["schema"]
    first: dict[str, Any] = schema.get("anyOf", [schema])[0]
    return first | {k: v for k, v in schema.items() if k != "anyOf"}


def body(document: dict[str, Any], model: str) -> dict[str, Any]:
    properties: dict[str, Any] = document["components"]["schemas"][model]["properties"]
    return properties


def test_every_error_answer_is_declared_in_the_one_error_shape(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, op in operations(document):
        answers = op["responses"]
        for status, answer in answers.items():
            if status.startswith(("4", "5")):
                assert answer["content"]["application/json"]["schema"] == ERROR, (method, path, status)
        if path not in OPEN:
            assert {"401", "503"} <= set(answers), (method, path)
        if op.get("requestBody"):
            assert {"400", "413", "422"} <= set(answers), (method, path)
        named = "{name}" in path or "{webhook_id}" in path or "{tenant_id}" in path or "{key_id}" in path
        if named and (method, path) not in IDEMPOTENT:
            assert "404" in answers, (method, path)
    statuses = {(m, p): set(op["responses"]) for m, p, op in operations(document)}
    assert {"403", "429"} <= statuses["post", "/api/sessions"]
    assert {"409", "429"} <= statuses["post", "/api/sendText"]
    assert "409" in statuses["post", "/api/sessions/{name}/backups/{backup_id}/restore"]
    assert "503" in statuses["get", "/ready"]


def test_the_qr_code_answers_a_png_or_json(document: dict[str, Any]) -> None:
    content = document["paths"]["/api/{name}/auth/qr"]["get"]["responses"]["200"]["content"]
    assert content["image/png"]["schema"] == {"type": "string", "format": "binary"}
    assert len(content["application/json"]["schema"]["anyOf"]) == 2
    assert set(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_ids_chat_ids_and_cursors_have_their_patterns(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert parameter(paths["/api/tenants/{tenant_id}"]["get"], "tenant_id")["pattern"] == TENANT_ID_PATTERN
    assert parameter(paths["/api/keys/{key_id}"]["delete"], "key_id")["pattern"] == API_KEY_ID_PATTERN
    assert parameter(paths["/api/keys"]["get"], "tenant_id")["pattern"] == TENANT_ID_PATTERN
    assert parameter(paths["/api/webhooks/{webhook_id}"]["get"], "webhook_id")["pattern"] == WEBHOOK_ID_PATTERN
    restore = paths["/api/sessions/{name}/backups/{backup_id}/restore"]["post"]
    assert parameter(restore, "backup_id")["pattern"] == BACKUP_ID_PATTERN
    chat = paths["/api/{name}/chats/{chat_id}/messages"]["get"]
    assert parameter(chat, "chat_id")["pattern"] == CHAT_ID_PATTERN
    assert parameter(chat, "from")["pattern"] == CHAT_ID_PATTERN
    assert parameter(chat, "cursor")["pattern"] == TIME_SEQ_CURSOR
    assert parameter(paths["/api/{name}/chats"]["get"], "cursor")["pattern"] == TIME_ID_CURSOR
    assert parameter(paths["/api/{name}/groups"]["get"], "cursor")["pattern"] == ID_CURSOR
    assert parameter(paths["/api/{name}/contacts"]["get"], "cursor")["pattern"] == ID_CURSOR
    assert body(document, "SendText")["chatId"]["pattern"] == CHAT_ID_PATTERN
    assert re.fullmatch(r"\^evt_.*", parameter(paths["/api/events"]["get"], "after")["pattern"])


def accepts(check: Any, value: Any) -> bool:
    try:
        check(value)
    except (ValueError, ValidationError):
        return False
    return True


def test_the_document_takes_no_more_than_the_checks_do(document: dict[str, Any]) -> None:
    """Samples on both sides of each documented form: what the document allows, the check takes."""
    headers = body(document, "WebhookCreate")["headers"]
    name_doc, value_doc = headers["propertyNames"]["pattern"], headers["additionalProperties"]["pattern"]
    for name, taken in (
        ("Authorization", True),
        ("x-route", True),
        ("Host", False),
        ("webhook-ID", False),
        ("proxy-authorization", False),
        ("bad name", False),
        ("\u00e9", False),
    ):
        assert bool(re.search(name_doc, name)) == taken == accepts(custom_headers, {name: "v"}), name
    for value in ("Bearer x", "", " x", "x ", "a\tb", "caf\u00e9", "\u20ac", "a\nb"):
        assert bool(re.search(value_doc, value)) == accepts(custom_headers, {"x": value}), repr(value)
    events = body(document, "WebhookCreate")["events"]["items"]["enum"]
    assert parse_types(events) == events
    update = body(document, "WebhookUpdate")
    for field in ("url", "events", "headers"):
        assert "anyOf" not in update[field], field  # left out or given, never null
    assert body(document, "SessionCreate")["engine"]["enum"] == [*ENGINE_NAMES, None]
    email_doc = body(document, "TenantCreate")["contact_email"]["pattern"]
    email = TypeAdapter(EmailStr)
    for address in ("ops@example.com", "ops@example.test", "ops@example.local.", "ops@x.onion", "a@test.com"):
        assert bool(re.search(email_doc, address)) == accepts(email.validate_python, address), address
    url_doc = body(document, "WebhookCreate")["url"]["pattern"]
    for url in ("https://hooks.example.com/x?y=1", "http://a:8080", "http://10.0.0.1/", "ftp://a/", "http://"):
        assert bool(re.search(url_doc, url)) == url.startswith(("https://hooks", "http://a:")), url

"""A key scoped to one session, end to end with real processes: its WebSocket stream (by key or by ticket) carries
that session's events only, asking for another session or holding no ``read`` is refused, and switching the key off
closes its open stream at once."""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.probes import close_code, read_until, ws_url
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def test_a_session_s_key_streams_that_session_only_until_switched_off(stack: Stack) -> None:
    assert stack.gateway is not None
    base = stack.gateway.base_url
    stack.link("one", "+15550001")
    stack.link("two", "+15550002")

    def make(**fields: object) -> dict[str, str]:
        made = httpx.post(base + "/api/keys", json=fields, headers=stack.key)
        assert made.status_code == 201, made.text
        return made.json()  # type: ignore[no-any-return]

    reader = make(session="one", actions={"read": True})
    reader_key = {"X-Api-Key": reader["key"]}
    sender_key = {"X-Api-Key": make(session="one", actions={"send": True})["key"]}
    for query, headers in (("session=two", reader_key), ("", sender_key)):
        with connect(ws_url(stack, query), additional_headers=headers) as ws:
            assert close_code(ws) == 4403, (query, headers)

    ticket = httpx.post(base + "/api/events/ticket", headers=reader_key).json()["ticket"]
    with (
        connect(ws_url(stack, "events=message"), additional_headers=reader_key) as by_key,
        connect(ws_url(stack, f"events=message&ticket={ticket}")) as by_ticket,
        connect(ws_url(stack, "events=message"), additional_headers=stack.key) as tenant,
    ):
        for phone in ("+15550002", "+15550001"):  # the other session's message first: it must not reach the key
            stack.sim_post(f"/devices/{phone}/messages", {"from": "+15550100", "text": f"to {phone}", "count": 1})
        everything = read_until(tenant, lambda got: len(got) >= 2, 20)
        assert {e["session"] for e in everything} == {"one", "two"}
        for ws in (by_key, by_ticket):
            (only,) = read_until(ws, lambda got: len(got) >= 1, 20)
            assert (only["session"], only["payload"]["body"]) == ("one", "to +15550001")

        started = time.monotonic()
        off = {"isAdmin": False, "session": "one", "actions": {"read": True}, "isActive": False}
        assert httpx.put(f"{base}/api/keys/{reader['id']}", json=off, headers=stack.key).status_code == 200
        assert close_code(by_key) == 4401
        assert close_code(by_ticket) == 4401
        assert time.monotonic() - started < 5
        stack.sim_post("/devices/+15550001/messages", {"from": "+15550100", "text": "after", "count": 1})
        assert read_until(tenant, lambda got: len(got) >= 1, 20)[0]["payload"]["body"] == "after"  # it goes on
    assert httpx.get(base + "/api/sessions", headers=reader_key).status_code == 401

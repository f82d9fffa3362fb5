"""A session created as a WAHA client creates it, with ``config.webhooks``, ``proxy`` and ``client``, in real
processes (the gateway and the simulator): the proxy and the device name reach the engine, and events reach the
webhook of the config."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

from tests.support.probes import HOOKS
from tests.support.receiver import Receiver
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e


def test_a_session_s_config_reaches_its_engine_and_its_webhook(
    stack_factory: Callable[..., Stack], receiver: Receiver
) -> None:
    stack = stack_factory(**HOOKS)
    stack.start()
    stack.tenant()
    config = {
        "proxy": {"server": "proxy.example.com:3128", "username": "shop", "password": "p@ss:word"},
        "client": {"deviceName": "Shop till", "browserName": "Firefox"},
        "webhooks": [{"url": receiver.url("/waha"), "events": ["message"], "hmac": {"key": "shared"}}],
    }
    stack.link("main", "+15550071", config=config)
    # The password went in sealed and came out whole at the engine, which connects through the proxy it names.
    assert stack.device("+15550071")["client"] == {
        "deviceName": "Shop till",
        "proxy": "http://shop:p%40ss%3Aword@proxy.example.com:3128",
    }
    session = stack.session("main")
    assert session["config"]["proxy"] == {
        "server": "proxy.example.com:3128",
        "username": "shop",
        "password": "********",
    }
    assert session["config"]["webhooks"] == [
        {"url": receiver.url("/waha"), "events": ["message"], "hmac": {"key": "********"}}
    ]
    stack.sim_post("/devices/+15550071/messages", {"from": "+15550100", "text": "hello from the phone"})
    wait_for(lambda: any(r.path == "/waha" for r in receiver.received), 20, "the delivery to the config's webhook")
    (delivered,) = [r for r in receiver.received if r.path == "/waha"]
    # A WAHA handler reads it as WAHA sends it, and checks WAHA's HMAC with the key of the config.
    assert (delivered.envelope["event"], delivered.envelope["payload"]["body"]) == ("message", "hello from the phone")
    expected = hmac.new(b"shared", delivered.body, hashlib.sha512).hexdigest()
    assert delivered.headers["x-webhook-hmac"] == expected
    # Deleting the session deletes its webhooks with it.
    with stack.http as http:
        assert http.delete("/api/sessions/main").status_code == 200
        assert http.get("/api/webhooks").json() == []

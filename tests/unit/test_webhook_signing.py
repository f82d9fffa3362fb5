"""Standard Webhooks headers, checked with the ``standardwebhooks`` package's own verifier."""

from __future__ import annotations

import base64
import math
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from wagate.webhooks.client import signed_headers

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = '{"id":"evt_1","event":"message"}'


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5, 0.999999, None])
def test_headers_verify_at_any_time_within_a_second(offset: float | None) -> None:
    second = int(time.time())
    # None: the last float before the next second, which rounds up to it at microsecond precision
    now = math.nextafter(float(second + 1), 0.0) if offset is None else second + offset
    if offset is None:
        assert datetime.fromtimestamp(now, UTC).timestamp() == second + 1  # the rounding that used to bite
    headers = signed_headers([Webhook(SECRET)], "evt_1", now, BODY)
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == str(second)
    assert Webhook(SECRET).verify(BODY, headers) == {"id": "evt_1", "event": "message"}


def test_a_changed_body_or_id_does_not_verify() -> None:
    headers = signed_headers([Webhook(SECRET)], "evt_1", time.time(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace("1", "2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, {**headers, "webhook-id": "evt_2"})


def test_during_a_rotation_either_secret_verifies_and_no_other() -> None:
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    headers = signed_headers([Webhook(new), Webhook(SECRET)], "evt_1", time.time(), BODY)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (new, SECRET):
        assert Webhook(secret).verify(BODY, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):  # a changed body fails under both
        Webhook(SECRET).verify(BODY.replace("1", "2"), headers)

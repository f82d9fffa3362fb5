"""The webhook dispatcher against real receivers on loopback, a real store, and an injected clock for the hours
a retry schedule spans. Every request is checked with the ``standardwebhooks`` package's own verifier or signer."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook as Signer
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.builders import make_settings
from tests.support.receiver import Receiver
from tests.support.services import pg_url
from wagate.domain.events import Announced, Event, EventType
from wagate.domain.sessions import Desired, NewSession, Quotas, Session
from wagate.domain.webhooks import DeliveryState, Retries, RetryPolicy, Webhook, WebhookChange
from wagate.gateway import Gateway
from wagate.ids import WebhookId
from wagate.runtime.metrics import Metrics
from wagate.webhooks.client import parse_retry_after
from wagate.webhooks.dispatcher import JITTER, RETRY_SCHEDULE, WebhookDispatcher


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    gateway: Gateway
    clock: FakeClock
    receiver: Receiver
    session: Session
    dispatcher: WebhookDispatcher

    async def webhook(self, path: str = "/hook", events: list[str] | None = None) -> tuple[Webhook, str]:
        secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        made = await self.gateway.store.webhooks.create(
            self.session.tenant_id, self.receiver.url(path), events or ["*"], None, secret, limit=10
        )
        return made, secret

    async def emit(self, count: int, start: int = 0) -> list[Event]:
        events = [
            Event.new(
                EventType.MESSAGE,
                self.session.tenant_id,
                self.session.id,
                self.session.name,
                self.clock.now,
                {"n": n},
            )
            for n in range(start, start + count)
        ]
        await self.gateway.store.events.append(events)
        return events

    async def delivery(self, webhook: Webhook) -> Any:
        found = await self.gateway.store.outbox.list_deliveries(
            self.session.tenant_id, webhook.id, state=None, limit=10
        )
        assert len(found) == 1
        return found[0]


@pytest.fixture(params=[pytest.param("process", marks=pytest.mark.e2e), "inline"])
async def rig_factory(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """Rigs whose dispatcher sends through the sender process, then the same tests sending inline."""
    made: list[Rig] = []

    async def make(start: float | None = None, database: tuple[str, str] | None = None, **settings: Any) -> Rig:
        clock = FakeClock(start if start is not None else time.time())
        values: dict[str, Any] = {
            "webhook_allow_private": True,
            "webhook_poll_interval": 0.05,
            "webhook_timeout": 0.5,
            "webhook_sender": request.param,
            **settings,
        }
        url, schema = database or (f"sqlite+aiosqlite:///{tmp_path / f'hooks-{len(made)}.db'}", None)
        gateway = await Gateway.open(make_settings(tmp_path, url, **values), clock=clock, schema=schema)
        tenant = await gateway.store.tenants.create("t", contact_email=None, max_sessions=None)
        session = await gateway.store.sessions.create(
            NewSession(tenant.id, "main", "sim", {}, Desired.RUNNING), quotas=Quotas(10, 10), actor="test"
        )
        receiver = Receiver()
        await receiver.start()
        dispatcher = WebhookDispatcher(gateway.store, gateway.settings, clock, owner="w#1", takeover="w#")
        dispatcher.rng = random.Random(7)
        rig = Rig(gateway, clock, receiver, session, dispatcher)
        made.append(rig)
        await dispatcher.start()
        return rig

    yield make
    for rig in made:
        await rig.dispatcher.stop(grace=0)
        await rig.receiver.stop()
        await rig.gateway.close()


def signed_by(received: Any, secret: str) -> bool:
    """The signature is the package's own for (id, timestamp header, body) under ``secret``."""
    stamp = datetime.fromtimestamp(int(received.headers["webhook-timestamp"]), UTC)
    expected: str = Signer(secret).sign(received.webhook_id, stamp, received.body.decode())
    return bool(received.headers["webhook-signature"] == expected)


async def test_every_delivery_verifies_and_tampering_or_age_fails(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    _, secret = await rig.webhook()
    rig.receiver.secrets["/hook"] = secret
    events = await rig.emit(25)
    got = await rig.receiver.wait_for(25)
    assert rig.receiver.failures == []
    assert rig.receiver.verified == 25
    assert [r.webhook_id for r in got] == [e.id for e in events]  # in order, webhook-id = event id
    assert [r.envelope["payload"] for r in got] == [e.payload for e in events]
    first = got[0].envelope
    assert (first["event"], first["session"], first["tenant"]) == ("message", "main", rig.session.tenant_id)
    assert (first["timestamp"], first["engine"], first["me"], first["metadata"]) == (
        round(events[0].timestamp * 1000),
        "GOWS",
        None,  # not linked yet
        None,
    )
    assert first["environment"]["worker"] == {"id": rig.gateway.settings.worker_id}
    with pytest.raises(WebhookVerificationError):  # one byte changed
        Signer(secret).verify(got[0].body.replace(b'"n":0', b'"n":1'), got[0].headers)
    with pytest.raises(WebhookVerificationError):  # another endpoint's secret
        Signer("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=").verify(got[0].body, got[0].headers)
    # A delivery signed ten minutes ago (the dispatcher's clock says so) fails the verifier's age check.
    old: Rig = await rig_factory(start=time.time() - 600)
    _, old_secret = await old.webhook()
    await old.emit(1)
    (late,) = await old.receiver.wait_for(1)
    assert signed_by(late, old_secret)
    with pytest.raises(WebhookVerificationError, match="too old"):
        late.verify(old_secret)


async def test_500_retries_on_the_schedule_then_dead_letter_then_redelivery(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    hook, secret = await rig.webhook()
    answer_500: list[bool] = [True]
    rig.receiver.answer = lambda r: web.Response(status=500) if answer_500[0] else None
    (event,) = await rig.emit(1)
    attempts = len(RETRY_SCHEDULE) + 1
    for attempt in range(1, attempts + 1):
        await rig.receiver.wait_for(attempt)
        row = await _settled(rig, hook, attempt)
        if attempt <= len(RETRY_SCHEDULE):
            delay = row.next_attempt_at - rig.clock.now
            nominal = RETRY_SCHEDULE[attempt - 1]
            assert nominal * (1 - JITTER) - 0.01 <= delay <= nominal * (1 + JITTER) + 0.01, (attempt, delay)
            assert row.state == DeliveryState.PENDING
            rig.clock.now += delay / 2
            await _quiet(rig, attempt)  # not due yet: no attempt
            assert rig.dispatcher.backlog == 0  # nor a task holding it: it waits in the outbox
            rig.clock.now = row.next_attempt_at
    dead = await rig.gateway.store.outbox.list_deliveries(rig.session.tenant_id, hook.id, state="dead", limit=5)
    assert [(d.attempts, d.last_status, d.last_error) for d in dead] == [(attempts, 500, "HTTP 500")]
    assert rig.dispatcher.outcomes["dead"] == 1
    assert sum(RETRY_SCHEDULE) / 3600 == pytest.approx(24, abs=1.5)  # about a day, as documented
    # Redelivered from the dead-letter list: same webhook-id, same body, new signature.
    answer_500[0] = False
    assert await rig.gateway.store.outbox.redeliver(rig.session.tenant_id, hook.id, [dead[0].seq]) == 1
    await rig.dispatcher.poll()
    got = await rig.receiver.wait_for(attempts + 1)
    assert {r.webhook_id for r in got} == {event.id}
    assert len({r.body for r in got}) == 1
    assert all(signed_by(r, secret) for r in got)
    assert (await _settled(rig, hook, 1, state=DeliveryState.DELIVERED)).state == DeliveryState.DELIVERED


async def _settled(rig: Rig, hook: Webhook, attempts: int, state: str | None = None) -> Any:
    """The delivery row once it records ``attempts`` attempts (and ``state``)."""
    deadline = time.monotonic() + 5
    while True:
        row = await rig.delivery(hook)
        if (row.attempts >= attempts and state is None) or row.state == state:
            return row
        assert time.monotonic() < deadline, f"delivery stuck at {row}"
        await _sleep(0.01)


async def _quiet(rig: Rig, attempts: int) -> None:
    await _sleep(0.2)
    assert len(rig.receiver.received) == attempts


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_retry_after_is_honoured_in_seconds_and_as_a_date(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    hook, _ = await rig.webhook()
    answers = iter(
        [
            web.Response(status=503, headers={"Retry-After": "120"}),
            web.Response(status=429, headers={"Retry-After": "Wed, 21 Oct 2065 07:28:00 GMT"}),
        ]
    )
    rig.receiver.answer = lambda r: next(answers, None)
    await rig.emit(1)
    await rig.receiver.wait_for(1)
    row = await _settled(rig, hook, 1)
    assert row.next_attempt_at == pytest.approx(rig.clock.now + 120, abs=0.01)  # exactly, no jitter
    rig.clock.now += 119
    await _quiet(rig, 1)
    rig.clock.now += 1
    await rig.receiver.wait_for(2)
    row = await _settled(rig, hook, 2)
    assert row.next_attempt_at == pytest.approx(rig.clock.now + 86400, abs=0.01)  # a far date is capped at a day
    date = datetime(2065, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed, 21 Oct 2065 07:28:00 GMT", now=date - 3600) == pytest.approx(3600)
    assert parse_retry_after("soon", now=0) is None
    rig.clock.now = row.next_attempt_at
    await rig.receiver.wait_for(3)
    assert (await _settled(rig, hook, 3, state=DeliveryState.DELIVERED)).last_status == 204


async def test_a_failure_while_later_deliveries_wait_keeps_the_order(
    rig_factory: Callable[..., Any],
) -> None:
    """Deliveries committed while the group's requests are out wait their turn; when one fails, none after it is
    sent before its retry, and then all go in order."""
    rig: Rig = await rig_factory()
    hook, _ = await rig.webhook()
    rig.receiver.delay = 0.03
    failed: list[Any] = []

    def answer(received: Any) -> web.Response | None:
        if received.envelope["payload"]["n"] == 3 and not failed:
            failed.append(received)
            return web.Response(status=500)
        return None

    rig.receiver.answer = answer
    for start in range(0, 12, 2):  # six commits while the first requests are out
        await rig.emit(2, start=start)
        await _sleep(0.01)
    await rig.receiver.wait_for(4)
    deadline = time.monotonic() + 5
    while True:
        pending = await rig.gateway.store.outbox.list_deliveries(
            rig.session.tenant_id, hook.id, state=DeliveryState.PENDING, limit=20
        )
        retried = [d for d in pending if d.attempts == 1]
        if retried:
            break
        assert time.monotonic() < deadline
        await _sleep(0.01)
    await _quiet(rig, 4)  # nothing after the failed one goes meanwhile
    rig.clock.now = retried[0].next_attempt_at
    await rig.receiver.wait_for(13)
    assert [r.envelope["payload"]["n"] for r in rig.receiver.received if r is not failed[0]] == list(range(12))


async def test_the_delivery_lag_counts_the_wait_for_a_retry(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    hook, _ = await rig.webhook()
    first: list[bool] = [True]

    def answer(_: Any) -> web.Response | None:
        if first[0]:
            first[0] = False
            return web.Response(status=503, headers={"Retry-After": "120"})
        return None

    rig.receiver.answer = answer
    metrics = Metrics()
    rig.dispatcher.observe_lag = metrics.webhook_lag.observe  # as the app wires it
    await rig.emit(1)
    await rig.receiver.wait_for(1)
    row = await _settled(rig, hook, 1)
    rig.clock.now = row.next_attempt_at  # created at the emit, it succeeds two (injected) minutes later
    await rig.receiver.wait_for(2)
    deadline = time.monotonic() + 5
    while rig.dispatcher.outcomes["delivered"] < 1:
        assert time.monotonic() < deadline
        await _sleep(0.01)
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        if family.name == "wagate_webhook_delivery_lag_seconds"
        for sample in family.samples
    }
    assert samples[("wagate_webhook_delivery_lag_seconds_count", None)] == 1
    assert samples[("wagate_webhook_delivery_lag_seconds_sum", None)] == pytest.approx(120, abs=0.01)
    assert samples[("wagate_webhook_delivery_lag_seconds_bucket", "60.0")] == 0
    assert samples[("wagate_webhook_delivery_lag_seconds_bucket", "300.0")] == 1
    assert samples[("wagate_webhook_delivery_lag_seconds_bucket", "+Inf")] == 1


async def test_a_receiver_that_times_out_is_retried(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory(webhook_timeout=0.3)
    hook, _ = await rig.webhook()
    rig.receiver.delay = 2.0
    await rig.emit(1)
    row = await _settled(rig, hook, 1)
    assert row.last_error == "no answer within 0.3s"
    assert RETRY_SCHEDULE[0] * (1 - JITTER) <= row.next_attempt_at - rig.clock.now <= RETRY_SCHEDULE[0] * (1 + JITTER)
    rig.receiver.delay = 0
    rig.clock.now = row.next_attempt_at
    assert (await _settled(rig, hook, 2, state=DeliveryState.DELIVERED)).attempts == 2


async def test_410_disables_the_endpoint_and_keeps_its_queue(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    gone, _ = await rig.webhook("/gone")
    await rig.webhook("/live")
    rig.receiver.answer = lambda r: web.Response(status=410) if r.path == "/gone" else None
    await rig.emit(3)
    await rig.receiver.wait_for(4)  # /live gets 3, /gone one attempt
    await _sleep(0.3)
    assert [r.path for r in rig.receiver.received].count("/gone") == 1
    disabled = await rig.gateway.store.webhooks.get(rig.session.tenant_id, gone.id)
    assert disabled is not None
    assert not disabled.enabled
    assert "410" in (disabled.disabled_reason or "")
    await rig.emit(2, start=3)  # new events: none for the disabled endpoint
    await rig.receiver.wait_for(6)
    await _sleep(0.3)
    assert [r.path for r in rig.receiver.received].count("/gone") == 1
    # Enabled again, it resumes where it stopped, in order.
    rig.receiver.answer = None
    await rig.gateway.store.webhooks.set_disabled(rig.session.tenant_id, gone.id, None)
    rig.dispatcher.forget_endpoint(WebhookId(gone.id))
    await rig.dispatcher.poll()
    await rig.receiver.wait_for(9)
    resumed = [r.envelope["payload"]["n"] for r in rig.receiver.received if r.path == "/gone"]
    assert resumed == [0, 0, 1, 2]


async def test_one_failing_event_holds_back_its_session_until_it_is_delivered(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    hook, _ = await rig.webhook()
    failed_once: set[int] = set()

    def flaky(received: Any) -> web.Response | None:
        n = received.envelope["payload"]["n"]
        if n == 3 and n not in failed_once:
            failed_once.add(n)
            return web.Response(status=502)
        return None

    rig.receiver.answer = flaky
    await rig.emit(10)
    await rig.receiver.wait_for(4)
    await _quiet(rig, 4)  # 4..9 wait behind 3
    rig.clock.now += RETRY_SCHEDULE[0] * (1 + JITTER)
    await rig.receiver.wait_for(11)
    order = [r.envelope["payload"]["n"] for r in rig.receiver.received]
    assert order == [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9]
    delivered = await rig.gateway.store.outbox.list_deliveries(
        rig.session.tenant_id, hook.id, state="delivered", limit=20
    )
    deadline = time.monotonic() + 3
    while len(delivered) < 10 and time.monotonic() < deadline:
        await _sleep(0.05)
        delivered = await rig.gateway.store.outbox.list_deliveries(
            rig.session.tenant_id, hook.id, state="delivered", limit=20
        )
    assert len(delivered) == 10


async def test_a_restarted_dispatcher_sends_what_the_last_one_left(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    await rig.webhook()
    rig.receiver.answer = lambda r: web.Response(status=500)
    await rig.dispatcher.stop(grace=0)  # nothing running: the events wait in the outbox
    events = await rig.emit(20)
    rig.receiver.answer = None
    successor = WebhookDispatcher(rig.gateway.store, rig.gateway.settings, rig.clock, owner="w#2", takeover="w#")
    await successor.start()
    try:
        got = await rig.receiver.wait_for(20)
    finally:
        await successor.stop()
    assert [r.webhook_id for r in got] == [e.id for e in events]


async def test_an_endpoints_own_headers_go_with_every_delivery_and_a_change_applies(
    rig_factory: Callable[..., Any],
) -> None:
    rig: Rig = await rig_factory()
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = (("authorization", "Bearer tok-1"), ("x-route", "eu-1"))
    hook = await rig.gateway.store.webhooks.create(
        rig.session.tenant_id, rig.receiver.url("/one"), ["*"], None, secret, limit=10, headers=headers
    )
    rig.receiver.secrets["/one"] = rig.receiver.secrets["/two"] = secret
    await rig.emit(3)
    first = (await rig.receiver.wait_for(3))[:3]  # (the receiver's own list, which grows)
    assert rig.receiver.failures == []
    for got in first:
        assert (got.path, got.headers["authorization"], got.headers["x-route"]) == ("/one", "Bearer tok-1", "eu-1")
        assert got.headers["content-type"] == "application/json"

    change = WebhookChange(url=rig.receiver.url("/two"), headers=(("x-route", "us-2"),))
    assert await rig.gateway.store.webhooks.update(rig.session.tenant_id, hook.id, change) is not None
    rig.dispatcher.forget_endpoint(hook.id)  # what the API does on a change
    await rig.emit(2, start=3)
    later = (await rig.receiver.wait_for(5))[3:5]
    assert rig.receiver.failures == []
    assert rig.receiver.verified == 5
    for got in later:
        assert (got.path, got.headers["x-route"], "authorization" in got.headers) == ("/two", "us-2", False)
    assert [got.envelope["payload"]["n"] for got in first + later] == [0, 1, 2, 3, 4]  # in order across the change
    await _quiet(rig, 5)  # and once each


async def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    hook, old = await rig.webhook()
    new = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    tenant = rig.session.tenant_id
    rotated = await rig.gateway.store.webhooks.rotate_secret(tenant, hook.id, new, previous_until=rig.clock.now + 60)
    assert rotated is not None
    assert rotated.previous_until == rig.clock.now + 60
    rig.dispatcher.forget_endpoint(hook.id)
    await rig.emit(1)
    (during,) = await rig.receiver.wait_for(1)
    assert during.verify(new)["payload"] == {"n": 0}
    assert during.verify(old)["payload"] == {"n": 0}  # a receiver not yet switched still verifies

    rig.clock.now += 61  # the overlap is over: the next read of the endpoint signs with the new secret alone
    rig.dispatcher.forget_endpoint(hook.id)
    await rig.emit(1, start=1)
    after = (await rig.receiver.wait_for(2))[1]
    assert signed_by(after, new)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Signer(old).verify(after.body, after.headers)

    # At once (a leaked secret): the old one is not kept at all.
    again = await rig.gateway.store.webhooks.rotate_secret(tenant, hook.id, old, previous_until=rig.clock.now)
    assert again is not None
    assert again.previous_until is None
    found = await rig.gateway.store.webhooks.secret_all_tenants(hook.id)
    assert found is not None
    assert (found.secret, found.previous_secret, found.secrets(rig.clock.now)) == (old, None, (old,))


async def test_a_410_tells_the_other_workers_on_postgresql(pg_schema: str, rig_factory: Callable[..., Any]) -> None:
    """On PostgreSQL the dispatcher that saw the 410 says so on the workers' channel, so that the others stop sending
    to the endpoint before their copy of it expires. (``pg_schema`` comes first, so that the schema is dropped after
    the rig has closed its connections.)"""
    rig: Rig = await rig_factory(database=(pg_url(), pg_schema))
    gone, _ = await rig.webhook("/gone")
    rig.receiver.answer = lambda r: web.Response(status=410)
    heard: list[Announced] = []
    async with rig.gateway.store.peers.listen(heard.append) as alive:
        assert alive is not None
        await rig.emit(1)
        await rig.receiver.wait_for(1)
        deadline = time.monotonic() + 5
        while not any(gone.id in a.webhooks for a in heard):
            assert time.monotonic() < deadline, heard
            await _sleep(0.02)
    notice = next(a for a in heard if gone.id in a.webhooks)
    assert notice.process == "w#1"
    disabled = await rig.gateway.store.webhooks.get(rig.session.tenant_id, gone.id)
    assert disabled is not None
    assert not disabled.enabled


async def _dead_letters(rig: Rig, hook: Webhook, count: int) -> list[Any]:
    """The endpoint's dead letters once there are ``count`` of them (the clock stands still: no retry falls due)."""
    deadline = time.monotonic() + 10
    while True:
        dead = await rig.gateway.store.outbox.list_deliveries(rig.session.tenant_id, hook.id, state="dead", limit=50)
        if len(dead) >= count:
            return dead
        assert time.monotonic() < deadline, f"{len(dead)} dead letters, expected {count}"
        await _sleep(0.02)


async def test_a_refused_address_is_a_dead_letter_at_once_and_holds_nothing_back(
    backend: tuple[str, str | None], rig_factory: Callable[..., Any]
) -> None:
    """With the guard on, an endpoint whose host resolves to (or is) a loopback address gets no request: each of its
    deliveries is a dead letter at its first attempt, with the refusal as its error, no retry is scheduled and the
    events after it are not held back; the endpoint shows why. Once an attempt gets through (here the guard is
    lifted, as a fixed DNS record would let it through), the mark clears by itself. (``backend`` comes first, so
    that its schema is dropped after the rigs have closed their connections.)"""
    rig: Rig = await rig_factory(database=backend, webhook_allow_private=False)
    tenant, secret = rig.session.tenant_id, "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    named = await rig.gateway.store.webhooks.create(
        tenant, rig.receiver.url("/named").replace("127.0.0.1", "localhost"), ["*"], None, secret, limit=10
    )
    literal = await rig.gateway.store.webhooks.create(
        tenant, rig.receiver.url("/literal"), ["*"], None, secret, limit=10
    )
    events = await rig.emit(3)
    reasons = {
        named.id: r"address_refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address",
        literal.id: r"address_refused: the URL's host 127\.0\.0\.1 is a loopback address",
    }
    for hook in (named, literal):
        dead = await _dead_letters(rig, hook, 3)
        assert [d.event_id for d in reversed(dead)] == [e.id for e in events]  # every one, none waiting behind another
        for letter in dead:
            assert (letter.attempts, letter.last_status) == (1, None)
            assert re.fullmatch(reasons[hook.id], letter.last_error or ""), letter.last_error
        marked = await rig.gateway.store.webhooks.get(tenant, hook.id)
        assert marked is not None
        assert marked.enabled  # not disabled: the next events are tried, each on its own
        assert marked.blocked_reason == dead[0].last_error
        assert marked.blocked_at == rig.clock.now
    assert await rig.gateway.store.outbox.backlog(tenant) == {named.id: (0, 3), literal.id: (0, 3)}
    assert rig.receiver.received == []
    assert rig.dispatcher.outcomes["refused"] == 6

    await rig.dispatcher.stop(grace=0)
    lifted = rig.gateway.settings.with_overrides(webhook_allow_private=True)
    rig.dispatcher = WebhookDispatcher(rig.gateway.store, lifted, rig.clock, owner="w#2", takeover="w#")
    await rig.dispatcher.start()
    later = await rig.emit(1, start=3)
    got = await rig.receiver.wait_for(2)
    assert sorted(r.path for r in got) == ["/literal", "/named"]
    assert {r.webhook_id for r in got} == {later[0].id}
    deadline = time.monotonic() + 5
    while any(w.blocked_reason is not None for w in await rig.gateway.store.webhooks.list_webhooks(tenant)):
        assert time.monotonic() < deadline, "the mark stayed after a delivery got through"
        await _sleep(0.02)
    assert all(w.blocked_at is None for w in await rig.gateway.store.webhooks.list_webhooks(tenant))


async def test_an_hmac_key_signs_every_delivery_waha_s_way_beside_standard_webhooks(
    rig_factory: Callable[..., Any],
) -> None:
    rig: Rig = await rig_factory()
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    key = "waha-hmac-key"
    hook = await rig.gateway.store.webhooks.create(
        rig.session.tenant_id, rig.receiver.url("/hook"), ["*"], None, secret, limit=10, hmac=key
    )
    rig.receiver.secrets["/hook"] = secret
    await rig.emit(3)
    got = await rig.receiver.wait_for(3)
    assert rig.receiver.verified == 3  # the Standard Webhooks signature still verifies
    for received in got:
        expected = hmac.new(key.encode(), received.body, hashlib.sha512).hexdigest()
        assert received.headers["x-webhook-hmac"] == expected
        assert received.headers["x-webhook-hmac-algorithm"] == "sha512"
    assert len({r.headers["x-webhook-hmac"] for r in got}) == 3  # of each body

    assert await rig.gateway.store.webhooks.update(rig.session.tenant_id, hook.id, WebhookChange(hmac=None))
    rig.dispatcher.forget_endpoint(hook.id)
    await rig.emit(1, start=3)
    (last,) = (await rig.receiver.wait_for(4))[3:]
    assert "x-webhook-hmac" not in last.headers
    assert rig.receiver.verified == 4


async def test_an_endpoints_own_retries_set_the_waits_and_the_dead_letter(rig_factory: Callable[..., Any]) -> None:
    rig: Rig = await rig_factory()
    hook = await rig.gateway.store.webhooks.create(
        rig.session.tenant_id,
        rig.receiver.url("/hook"),
        ["*"],
        None,
        "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        limit=10,
        retries=Retries(10.0, 2, RetryPolicy.LINEAR),
    )
    rig.receiver.answer = lambda r: web.Response(status=500)
    await rig.emit(1)
    for attempt, nominal in ((1, 10.0), (2, 20.0)):  # linear: 10 s, then 20 s
        await rig.receiver.wait_for(attempt)
        row = await _settled(rig, hook, attempt)
        delay = row.next_attempt_at - rig.clock.now
        assert nominal * (1 - JITTER) - 0.01 <= delay <= nominal * (1 + JITTER) + 0.01, (attempt, delay)
        assert row.state == DeliveryState.PENDING
        rig.clock.now = row.next_attempt_at
    await rig.receiver.wait_for(3)
    row = await _settled(rig, hook, 3, state=DeliveryState.DEAD)  # two retries, then a dead letter
    assert (row.state, row.attempts) == (DeliveryState.DEAD, 3)
    await _quiet(rig, 3)


async def test_an_endpoint_that_wants_message_any_gets_every_message_named_so(
    rig_factory: Callable[..., Any],
) -> None:
    rig: Rig = await rig_factory()
    _, secret = await rig.webhook("/any", events=["message.any"])
    _, plain_secret = await rig.webhook("/plain", events=["message"])
    rig.receiver.secrets["/any"], rig.receiver.secrets["/plain"] = secret, plain_secret
    events = await rig.emit(2)
    got = await rig.receiver.wait_for(4)
    assert rig.receiver.failures == []
    assert rig.receiver.verified == 4  # signed over the body as it was delivered
    by_path: dict[str, list[Any]] = {}
    for received in got:
        by_path.setdefault(received.path, []).append(received)
    assert [(r.webhook_id, r.envelope["event"]) for r in by_path["/any"]] == [(e.id, "message.any") for e in events]
    assert [(r.webhook_id, r.envelope["event"]) for r in by_path["/plain"]] == [(e.id, "message") for e in events]
    for named, plain in zip(by_path["/any"], by_path["/plain"], strict=True):  # nothing else differs
        assert named.body == plain.body.replace(b'"event":"message"', b'"event":"message.any"', 1)

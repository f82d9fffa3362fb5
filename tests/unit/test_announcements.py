"""Announcements of committed events to other processes: PostgreSQL notification payloads and their reading."""

from __future__ import annotations

from wagate.domain.events import Event, EventType
from wagate.ids import ApiKeyId, SessionId, TenantId, WebhookId
from wagate.store.sql.announcements import announcements, channel, notice, parse_announcement


def event(tenant: str) -> Event:
    return Event.new(EventType.MESSAGE, TenantId(tenant), SessionId("ses_x"), "s", 1.0, {})


def test_a_commit_is_announced_by_tenant_in_order() -> None:
    events = [event("ten_a"), event("ten_b"), event("ten_a")]
    (payload,) = announcements("w#1", events, [7, 8, 9])
    announced = parse_announcement(payload)
    assert announced is not None
    assert announced.process == "w#1"
    assert announced.seqs == {TenantId("ten_a"): [7, 9], TenantId("ten_b"): [8]}


def test_a_large_commit_takes_several_payloads_each_under_the_limit() -> None:
    events = [event(f"ten_{n % 3}") for n in range(5_000)]
    seqs = list(range(10_000_000, 10_005_000))
    payloads = announcements("worker-with-a-long-name#0123abcd", events, seqs)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= 8_000 for p in payloads)
    heard: dict[TenantId, list[int]] = {}
    for payload in payloads:
        announced = parse_announcement(payload)
        assert announced is not None
        for tenant, numbers in announced.seqs.items():
            heard.setdefault(tenant, []).extend(numbers)
    assert heard == {TenantId(f"ten_{r}"): [s for n, s in enumerate(seqs) if n % 3 == r] for r in range(3)}


def test_what_is_not_an_announcement_is_ignored() -> None:
    assert parse_announcement("") is None
    assert parse_announcement("w#1\tten_a:7,x") is None
    assert parse_announcement("w#1\t") is None
    assert announcements("w#1", [], []) == []  # no events, no announcement: a bare name is a hello


def test_a_bare_name_is_a_hello() -> None:
    hello = parse_announcement("w#2")
    assert hello is not None
    assert (hello.process, hello.seqs, hello.webhooks) == ("w#2", {}, ())


def test_changed_webhooks_are_named_with_an_at() -> None:
    notice = parse_announcement("w#2\t@wh_1\t@wh_2")
    assert notice is not None
    assert (notice.process, notice.seqs, notice.webhooks) == ("w#2", {}, ("wh_1", "wh_2"))
    assert parse_announcement("w#2\t@") is None


def test_one_channel_per_schema() -> None:
    assert channel(None) == "wagate_public"
    assert channel("bench") != channel("prod")
    assert len(channel("s" * 62)) == 63


def test_revoked_keys_and_deleted_tenants_are_told() -> None:
    told = parse_announcement(notice("w#3", revoked_keys=[ApiKeyId("key_1")], deleted_tenants=[TenantId("ten_a")]))
    assert told is not None
    assert (told.process, told.seqs, told.revoked_keys, told.deleted_tenants) == (
        "w#3",
        {},
        (ApiKeyId("key_1"),),
        (TenantId("ten_a"),),
    )
    assert parse_announcement(notice("w#3", [WebhookId("whk_1")])) == parse_announcement("w#3\t@whk_1")
    assert parse_announcement("w#3\t-key:") is None

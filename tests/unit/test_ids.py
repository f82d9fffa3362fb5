"""Ids: event ids are ULIDs spelt as python-ulid spells them, and never go backwards within a process."""

from __future__ import annotations

import random
import re
import time

import pytest
from ulid import ULID

from wagate.ids import (
    API_KEY_ID_PATTERN,
    BACKUP_ID_PATTERN,
    EVENT_ID_PATTERN,
    TENANT_ID_PATTERN,
    WEBHOOK_ID_PATTERN,
    _MonotonicUlid,
    encode_ulid,
    new_api_key_id,
    new_backup_id,
    new_event_id,
    new_session_id,
    new_tenant_id,
    new_webhook_id,
)


def test_the_ulid_encoder_agrees_with_python_ulid() -> None:
    rng = random.Random(7)
    values = [0, 1, 2**128 - 1, 2**127, 2**80 - 1, *(rng.getrandbits(128) for _ in range(5000))]
    for value in values:
        assert encode_ulid(value) == str(ULID.from_int(value)).lower()


def test_event_ids_carry_their_time_and_sort_in_creation_order() -> None:
    ids = [new_event_id() for _ in range(20000)]  # many within one millisecond: the random part counts up
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    stamp = ULID.from_str(ids[0].removeprefix("evt_").upper()).milliseconds
    later = ULID.from_str(ids[-1].removeprefix("evt_").upper()).milliseconds
    assert 0 <= later - stamp < 60_000
    assert new_session_id().startswith("ses_")


def test_within_one_millisecond_the_random_part_counts_up(monkeypatch: pytest.MonkeyPatch) -> None:
    ulids = _MonotonicUlid()
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)
    first, second, third = ulids.next(), ulids.next(), ulids.next()
    values = [ULID.from_str(u.upper()) for u in (first, second, third)]
    assert {v.milliseconds for v in values} == {1_700_000_000_000}
    assert [int(v) for v in values] == [int(values[0]) + i for i in range(3)]


def test_made_ids_match_the_patterns_the_api_gives() -> None:
    made = {
        TENANT_ID_PATTERN: new_tenant_id,
        API_KEY_ID_PATTERN: new_api_key_id,
        BACKUP_ID_PATTERN: new_backup_id,
        WEBHOOK_ID_PATTERN: new_webhook_id,
        EVENT_ID_PATTERN: new_event_id,
    }
    for pattern, new in made.items():
        for _ in range(200):
            assert re.fullmatch(pattern, new()), pattern
    assert re.fullmatch(TENANT_ID_PATTERN, "ten_" + encode_ulid(2**128 - 1))
    for wrong in ("ten_nope", "ten_" + "8" * 26, "TEN_" + "0" * 26, "ten_" + "0" * 25 + "u", "ten_" + "0" * 27):
        assert not re.fullmatch(TENANT_ID_PATTERN, wrong), wrong

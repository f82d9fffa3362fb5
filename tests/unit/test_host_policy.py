"""When an engine host is retired: the limits of its policy, each on its own."""

from __future__ import annotations

from wagate.engines.host.pool import HostPolicy, retire_reason


def test_a_host_is_retired_past_any_of_its_limits() -> None:
    policy = HostPolicy(recycle_starts=500, recycle_rss_kib=2048 * 1024, recycle_age=3600.0)
    assert retire_reason(policy, opened=499, rss_kib=2047 * 1024, age=3599.0) is None
    assert retire_reason(policy, opened=500, rss_kib=None, age=0.0) == "500 sessions opened"
    assert retire_reason(policy, opened=1, rss_kib=2048 * 1024, age=0.0) == "2048 MiB resident"
    assert retire_reason(policy, opened=1, rss_kib=None, age=3600.0) == "3600s old"
    assert retire_reason(HostPolicy(), opened=10**6, rss_kib=10**9, age=10**9) is None  # no limit set

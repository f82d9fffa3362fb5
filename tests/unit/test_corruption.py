"""The corruption guard's sliding windows, on an explicit clock."""

from __future__ import annotations

from wagate.supervisor.corruption import CorruptionGuard, CorruptionPolicy, Verdict

POLICY = CorruptionPolicy(window=60, session_failures=5, min_contacts=3, contact_failures=3)


def test_one_contacts_burst_resets_that_contact_once_per_window() -> None:
    guard = CorruptionGuard(POLICY)
    verdicts = [guard.record("alice", 1000 + i * 0.01) for i in range(1000)]
    assert verdicts[:2] == [Verdict.NONE, Verdict.NONE]
    assert verdicts[2] is Verdict.RESET_CONTACT
    assert verdicts.count(Verdict.RESET_CONTACT) == 1  # 10 s of failures: one reset
    assert Verdict.QUARANTINE not in verdicts
    # A window later the old failures have expired: a new burst resets again.
    assert [guard.record("alice", t) for t in (1070, 1071, 1072)][-1] is Verdict.RESET_CONTACT


def test_failures_across_contacts_quarantine_once() -> None:
    guard = CorruptionGuard(POLICY)
    contacts = ["a", "b", "c", "a", "b"]
    verdicts = [guard.record(c, 1000 + i) for i, c in enumerate(contacts)]
    assert verdicts[-1] is Verdict.QUARANTINE
    assert Verdict.QUARANTINE not in verdicts[:-1]
    assert guard.record("d", 1006) is not Verdict.QUARANTINE  # tripped: not twice
    guard.clear()
    assert [guard.record(c, 2000 + i) for i, c in enumerate(contacts)][-1] is Verdict.QUARANTINE


def test_failures_older_than_the_window_do_not_count() -> None:
    guard = CorruptionGuard(POLICY)
    for i, contact in enumerate(["a", "b", "c", "d"]):
        assert guard.record(contact, 1000 + i * 30) is Verdict.NONE  # never 5 within 60 s
    assert guard.record("e", 1200) is Verdict.NONE
    assert guard.record("a", 1201) is Verdict.NONE
    assert guard.record("a", 1202) is Verdict.NONE  # the old "a" expired: 2 in the window


def test_many_failures_from_two_contacts_do_not_quarantine() -> None:
    guard = CorruptionGuard(POLICY)
    verdicts = [guard.record("ab"[i % 2], 1000 + i * 0.1) for i in range(100)]
    assert Verdict.QUARANTINE not in verdicts
    assert verdicts.count(Verdict.RESET_CONTACT) == 2

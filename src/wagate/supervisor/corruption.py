"""The corruption guard: decryption failures ("Bad MAC") counted per contact and per session in a sliding window.

Failures from one contact only mean that contact's encryption session is broken: it is reset, once per window.
Failures across many contacts mean the session's own state is damaged (a lost write, a restored old copy): the
session is quarantined (backed up, wiped, linked again).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

__all__ = ["CorruptionGuard", "CorruptionPolicy", "Verdict"]


class Verdict(Enum):
    NONE = "none"
    RESET_CONTACT = "reset_contact"
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class CorruptionPolicy:
    window: float = 60.0  # seconds
    session_failures: int = 5  # failures within the window...
    min_contacts: int = 3  # ...across at least this many contacts quarantine the session
    contact_failures: int = 3  # failures from one contact within the window reset that contact


class CorruptionGuard:
    def __init__(self, policy: CorruptionPolicy) -> None:
        self.policy = policy
        self._failures: deque[tuple[float, str]] = deque()
        self._per_contact: dict[str, int] = {}
        self._reset_at: dict[str, float] = {}
        self.tripped = False

    def record(self, contact: str, now: float) -> Verdict:
        """Count one failure from ``contact`` at ``now``; what to do about it."""
        self._expire(now)
        self._failures.append((now, contact))
        self._per_contact[contact] = self._per_contact.get(contact, 0) + 1
        policy = self.policy
        if not self.tripped and (
            len(self._failures) >= policy.session_failures and len(self._per_contact) >= policy.min_contacts
        ):
            self.tripped = True
            return Verdict.QUARANTINE
        if (
            self._per_contact[contact] >= policy.contact_failures
            and now - self._reset_at.get(contact, float("-inf")) >= policy.window
        ):
            self._reset_at[contact] = now
            return Verdict.RESET_CONTACT
        return Verdict.NONE

    def clear(self) -> None:
        """After a quarantine: a new link starts with a clean slate."""
        self._failures.clear()
        self._per_contact.clear()
        self._reset_at.clear()
        self.tripped = False

    def _expire(self, now: float) -> None:
        horizon = now - self.policy.window
        while self._failures and self._failures[0][0] <= horizon:
            _, contact = self._failures.popleft()
            left = self._per_contact[contact] - 1
            if left:
                self._per_contact[contact] = left
            else:
                del self._per_contact[contact]

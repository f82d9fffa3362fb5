"""What this process's sessions have counted since it started: one typed record, read by the metrics at scrape time.

Counters only go up (Prometheus counters start at zero with the process). The supervisor, the runners and the keeper
are each handed the same record and count what they do; nothing reads a counter by name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SessionStats"]


@dataclass(slots=True)
class SessionStats:
    """The counters of this process's sessions, each named for what it counts."""

    reconnects: int = 0  # failed connection attempts that were retried
    breaker_opens: int = 0  # times a session's circuit breaker opened
    decrypt_failures: int = 0  # messages that failed to decrypt (Bad MAC)
    contact_resets: int = 0  # contacts' encryption sessions reset after repeated failures
    quarantines: int = 0  # sessions quarantined (corruption, or damaged stored state)
    damaged_records: int = 0  # stored auth state found damaged at rest: a contact's, the device's, or the data key
    backups_taken: int = 0  # sealed backups of sessions' auth state
    stuck_restarts: int = 0  # reconnects ordered by the health monitor for stuck sessions
    idle_stops: int = 0  # sessions stopped by the health monitor for inactivity
    handovers: int = 0  # sessions handed over to other workers to spread the load
    runner_restarts: int = 0  # runs of sessions started again after they failed

    def count_reconnect(self, breaker_opened: bool) -> None:
        self.reconnects += 1
        if breaker_opened:
            self.breaker_opens += 1

"""What one runner has recorded of its session's status, and the fenced writes that change it.

Every status change goes through the status recorder (group commit), fenced by the runner's lease: a refused write
raises ``LeaseLost`` and the runner ends without writing anything more. A change that changes nothing (the row says
so already) is not written. One INFO line per change of status or reason; FAILED is said at WARNING, with why.
"""

from __future__ import annotations

import logging
from typing import Any

from wagate.domain.events import Event
from wagate.domain.sessions import Lease, Reason, Session, Status, StatusChange
from wagate.errors import LeaseLost
from wagate.supervisor.context import RunnerContext

__all__ = ["StatusWriter"]


class StatusWriter:
    """The session's row as this runner last wrote it (or found it), and the writes that move it."""

    def __init__(
        self, ctx: RunnerContext, session: Session, lease: Lease, log: logging.LoggerAdapter[logging.Logger]
    ) -> None:
        self._ctx = ctx
        self._lease = lease
        self._log = log
        self.session = session
        self.status = session.status
        self.reason = session.reason
        self.note = session.note
        self.said = False  # a status of this runner's is recorded (until then its row is an earlier owner's)

    async def set(
        self,
        status: Status,
        reason: Reason | None,
        *,
        me: dict[str, Any] | None = None,
        clear_me: bool = False,
        note: str | None = None,
        detail: dict[str, Any] | None = None,
        events: tuple[Event, ...] = (),
    ) -> bool:
        """Record a status change (a real change, or a new attempt's detail), fenced by the lease; True when the
        status itself changed. Raises LeaseLost when refused."""
        unchanged = (status, reason, note) == (self.status, self.reason, self.note)
        if unchanged and me is None and not clear_me and not events and detail is None:
            self.said = True  # the row says so already
            return False
        change = StatusChange(
            tenant_id=self.session.tenant_id,
            session_id=self.session.id,
            owner=self._lease.owner or "",
            epoch=self._lease.epoch,
            status=status,
            reason=reason,
            me=me,
            clear_me=clear_me,
            note=note,
            detail=detail,
            events=events,
        )
        session = await self._ctx.recorder.record(change)
        if session is None:
            raise LeaseLost(f"session {self.session.id}: status write refused")
        moved = status is not self.status
        if moved and status is Status.FAILED:
            self._ctx.notifier.session_failed(session, reason, note)
        if moved or reason is not self.reason:
            failed = status is Status.FAILED  # the session stops trying: said at WARNING, with why
            self._log.log(
                logging.WARNING if failed else logging.INFO,
                "%s -> %s%s%s",
                self.status.value,
                status.value,
                f" ({reason.value})" if reason else "",
                f": {note}" if failed and note else "",
            )
        self.session, self.status, self.reason, self.note = session, status, reason, note
        self.said = True
        return moved

"""Operator notifications: when a session goes FAILED or is quarantined, its tenant's contact address gets an
email (when SMTP is configured), at most once per session per ``notify_interval``. Webhooks and the WebSocket hear
of the same change through its event."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage

from wagate.clock import Clock
from wagate.config import Settings
from wagate.domain.sessions import Reason, Session
from wagate.ids import SessionId
from wagate.store.base import Store
from wagate.tasks import TaskSet

__all__ = ["SMTP_TIMEOUT", "Notifier"]

log = logging.getLogger("wagate.notify")
SMTP_TIMEOUT = 10.0  # per SMTP operation; bounds how long a shutdown can wait for a mail in flight


class Notifier:
    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sent = 0
        self._last: dict[SessionId, float] = {}
        self._tasks = TaskSet()

    @property
    def enabled(self) -> bool:
        return self.settings.smtp_host is not None

    def session_failed(self, session: Session, reason: Reason | None, note: str | None) -> None:
        """Fire and forget: the runner never waits for a mail server."""
        if not self.enabled:
            return
        now = self.clock()
        last = self._last.get(session.id)
        if last is not None and now - last < self.settings.notify_interval:
            return
        self._last[session.id] = now
        self._tasks.spawn(self._send(session, reason, note), f"notify-{session.id}")

    async def drain(self, grace: float = 3.0) -> None:
        """Wait a little for emails being sent (a shutdown must not hang on a slow mail server)."""
        if self._tasks:
            late = await self._tasks.wait(grace)
            for task in late:
                task.cancel()
            if late:
                log.warning("gave up on %d notification email(s) at shutdown", len(late))

    async def _send(self, session: Session, reason: Reason | None, note: str | None) -> None:
        tenant = await self.store.tenants.get(session.tenant_id)
        if tenant is None or not tenant.contact_email:
            return
        what = (
            "quarantined (corrupted)" if reason is Reason.CORRUPTED else f"FAILED ({reason.value if reason else '?'})"
        )
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = tenant.contact_email
        message["Subject"] = f"wagate: session {session.name!r} is {what}"
        message.set_content(
            f"Session {session.name!r} of tenant {tenant.name!r} is {what}.\n\n"
            f"{note or ''}\n\n"
            f"Check GET /api/sessions/{session.name} and its history. Further failures of this session within "
            f"{self.settings.notify_interval:.0f} s send no more email.\n"
        )
        try:
            await asyncio.to_thread(self._deliver, message)
            self.sent += 1
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("could not email %s about session %s: %s", "the tenant", session.id, exc)

    def _deliver(self, message: EmailMessage) -> None:
        settings = self.settings
        assert settings.smtp_host is not None
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user and settings.smtp_password is not None:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(message)

"""Sealed backups of a session's auth state: on a schedule, before a wipe (logout, reset, quarantine), by hand."""

from __future__ import annotations

import logging

from wagate.domain.backups import Backup
from wagate.domain.sessions import Session
from wagate.supervisor.context import RunnerContext

__all__ = ["take_backup"]

log = logging.getLogger("wagate.supervisor")


async def take_backup(ctx: RunnerContext, session: Session, epoch: int, reason: str) -> Backup | None:
    """Keep a sealed copy of the session's auth state (the newest ``backups_keep``); None when there is none.
    Records that no longer open are left out (a quarantine for damaged state backs up what can be kept); the
    bundle names the linked device, so that a damaged record is restored only from a backup of the same link."""
    vault = ctx.vault(session, epoch)
    records, damaged = await vault.get_readable()
    if damaged:
        log.warning("backup of %s leaves out %d damaged record(s)", session.id, len(damaged))
    if not records:
        return None
    bundle = vault.bundle(records, device=(session.me or {}).get("id"))
    made = await ctx.backups.add(
        session.tenant_id,
        session.id,
        reason=reason,
        records=len(records),
        payload=bundle,
        keep=ctx.settings.backups_keep,
    )
    ctx.stats.backups_taken += 1
    return made

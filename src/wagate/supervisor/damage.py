"""Damaged device credentials put back from a backup of the same link, without a new scan.

A session's own credentials (the device's identity and keys, made when the phone linked it) do not change for the
life of that link, so any backup taken of the same linked device holds them as they were written. A backup of an
older link holds another device's keys, which WhatsApp no longer accepts (or, worse, which belong to a link the
tenant removed): the bundle names the device it was taken of (the session's ``me`` id, which names the device, e.g.
``15550001:2@s.whatsapp.net``), and only a backup of the device the session is linked as now is used. Contacts'
ratchets are not taken from the backup: they may have moved on since, and the vault keeps them current.

An engine's device record may hold more than the keys: neonize's holds whatsmeow's pre-keys and app-state versions
too, which come back as of the backup; whatsmeow catches up on them as after any older snapshot (a worker that died
between two snapshots leaves one too), where a new link would lose the whole history of the device.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from wagate.crypto.keyring import Keyring
from wagate.domain.backups import Backup
from wagate.domain.sessions import Session
from wagate.errors import CryptoError
from wagate.store.contracts.backups import BackupStore
from wagate.store.vault import Vault, open_bundle

__all__ = ["restore_from_backup"]

log = logging.getLogger("wagate.session")


async def restore_from_backup(
    backups: BackupStore, keyring: Keyring, vault: Vault, session: Session, records: Sequence[tuple[str, str]]
) -> Backup | None:
    """Write ``records`` (namespace, key) back from the newest backup of the session's current device that holds
    them all (one fenced write); that backup, or None when no backup of this link has them."""
    device = (session.me or {}).get("id")
    if not device or not records:
        return None
    wanted = set(records)
    for backup in await backups.list_backups(session.tenant_id, session.id):  # newest first
        payload = await backups.payload(session.tenant_id, session.id, backup.id)
        if payload is None:
            continue  # rotated away meanwhile
        try:
            header, stored = open_bundle(keyring, payload)
        except CryptoError as exc:
            log.warning("backup %s of %s does not open (%s); trying an older one", backup.id, session.id, exc)
            continue
        if header.device != device:
            continue
        found = {(namespace, key): value for namespace, key, value in stored if (namespace, key) in wanted}
        if len(found) == len(wanted):
            await vault.put_many(found)
            return backup
    return None

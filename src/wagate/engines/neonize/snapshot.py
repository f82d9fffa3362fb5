"""whatsmeow's own database, kept in the vault.

neonize keeps a session's credentials in whatsmeow's SQL tables and offers no way to plug in another store, so each
session gets a SQLite file of its own in a runtime directory, and the vault keeps sealed snapshots of it (SQLite's
online backup, compressed): taken at pairing, at every connect, on change at a bounded interval and at every graceful
stop; materialised before the engine starts when this machine's file is missing or older than the vault's (a fresh
machine, a redeploy, another worker that ran the session since).

A snapshot is kept in parts: each contact's encryption rows in a record of its own, the rest of the database (the
device's) in another, and a ``meta`` record with their digests. A snapshot writes only the parts that changed, and
bytes damaged at rest cost what their part holds: one contact's sessions (dropped; the contact re-establishes them),
or the device's (restored from a backup of the same link, or the session is linked again).

A marker next to the file records the digest of the snapshot the file last matched. When it equals the vault's, the
file is the same as the snapshot or newer (changes made here since) and is kept; otherwise the vault's copy wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from wagate.clock import Clock
from wagate.engines.neonize import rows
from wagate.errors import DamagedRecord
from wagate.store.contracts.auth import AuthState

__all__ = [
    "CONTACT_NS",
    "DB_KEY",
    "DEVICE_RECORDS",
    "META_KEY",
    "NAMESPACE",
    "SNAPSHOT_FORMAT",
    "SnapshotInfo",
    "Snapshots",
    "WhatsmeowDirectory",
    "WhatsmeowFile",
    "stored_sessions",
]

NAMESPACE = "whatsmeow"
CONTACT_NS = "whatsmeow.contact"  # one record per contact: its encryption rows (rows.CONTACT_TABLES)
DB_KEY = "db"
META_KEY = "meta"
# The device's part and the record that describes the whole: damaged, they go back together (from a backup of the
# same link) or the session is quarantined.
DEVICE_RECORDS = ((NAMESPACE, DB_KEY), (NAMESPACE, META_KEY))
SNAPSHOT_FORMAT = 2

# Passed to whatsmeow as its database "name": WAL so that snapshots read while whatsmeow writes, durable commits,
# foreign keys on. neonize appends "?_foreign_keys=on" to the name, which the last, unknown parameter absorbs.
_DSN_OPTIONS = "_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_synchronous=FULL&wagate=1"


def stored_sessions(directory: Path) -> list[str]:
    """The sessions with a whatsmeow file (or what is left of one) in ``directory``, by id."""
    if not directory.is_dir():
        return []
    found: set[str] = set()
    for path in directory.iterdir():
        for suffix in WhatsmeowFile.SUFFIXES:
            if path.name.endswith(suffix) and len(path.name) > len(suffix):
                found.add(path.name[: -len(suffix)])
                break
    return sorted(found)


class WhatsmeowDirectory:
    """The runtime directory's files, by session: what the gateway removes of a session that is gone (also where
    the engine itself runs in an engine host: these are files only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def forget(self, session_id: str) -> None:
        await asyncio.to_thread(WhatsmeowFile(self.path, session_id).remove)

    async def local_sessions(self) -> list[str]:
        return await asyncio.to_thread(stored_sessions, self.path)


class WhatsmeowFile:
    """One session's whatsmeow SQLite file in the runtime directory (readable by the gateway's user only)."""

    # What a session leaves in the directory, after its id: the database, SQLite's companions, the sync marker
    # (longest first, so that a companion is not taken for the database).
    COMPANIONS = ("-wal", "-shm", "-journal")
    SUFFIXES = (*(".db" + c for c in COMPANIONS), ".db", ".synced")

    def __init__(self, directory: Path, session_id: str) -> None:
        self.path = directory / f"{session_id}.db"
        self.marker = directory / f"{session_id}.synced"

    def dsn(self) -> str:
        return f"{self.path}?{_DSN_OPTIONS}"

    def exists(self) -> bool:
        return self.path.exists()

    def _companions(self) -> list[Path]:
        return [self.path.with_name(self.path.name + suffix) for suffix in self.COMPANIONS]

    def remove(self) -> None:
        for path in [self.path, *self._companions(), self.marker]:
            path.unlink(missing_ok=True)

    def stamp(self) -> tuple[int, ...]:
        """Changes when the database does (size and time of the file and its write-ahead log)."""
        stamp: list[int] = []
        for path in (self.path, self._companions()[0]):
            try:
                info = path.stat()
            except FileNotFoundError:
                stamp += [0, 0]
            else:
                stamp += [info.st_mtime_ns, info.st_size]
        return tuple(stamp)

    def has_device(self) -> bool:
        """Whether the file holds a linked device (whatsmeow's device row)."""
        if not self.exists():
            return False
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as db:
                return bool(db.execute("SELECT count(*) FROM whatsmeow_device").fetchone()[0])
        except sqlite3.Error:
            return False

    def forget_contact(self, user: str) -> int:
        """Delete whatsmeow's encryption sessions with every device of ``user`` (its Signal addresses are
        ``user:device`` or ``user_agent:device``); the contact's next message fails once and whatsmeow's retry
        receipt makes the sender start a new session. The number of sessions deleted."""
        if not self.exists():
            return 0
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as db:
            deleted = db.execute(
                "DELETE FROM whatsmeow_sessions WHERE their_id LIKE ? ESCAPE '\\' OR their_id LIKE ? ESCAPE '\\'",
                (_like(user) + ":%", _like(user) + "\\_%"),
            ).rowcount
            db.commit()
            return int(deleted)

    def backup(self) -> bytes:
        """A consistent copy of the database (SQLite's online backup), as bytes."""
        with (
            contextlib.closing(sqlite3.connect(self.path, timeout=10)) as source,
            contextlib.closing(sqlite3.connect(":memory:")) as copy,
        ):
            source.backup(copy)
            return copy.serialize()

    def write(self, data: bytes) -> None:
        """Replace the database with ``data`` (atomically: a reader sees the old file or the new one)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in self._companions():
            path.unlink(missing_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.path)

    def synced(self) -> str | None:
        try:
            return self.marker.read_text().strip() or None
        except FileNotFoundError:
            return None

    def mark_synced(self, digest: str) -> None:
        self.marker.write_text(digest)

    def protect(self) -> None:
        """The file holds the session's keys in clear: only the gateway's user may read it."""
        for path in [self.path, *self._companions()]:
            with contextlib.suppress(FileNotFoundError):
                path.chmod(0o600)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The snapshot's ``meta`` record: the digest of the whole (what the file's marker is compared with), and of
    each part. A first-format snapshot (the database in one record, no contact parts) reads with ``device`` equal to
    ``digest`` and no ``contacts``; the next snapshot taken writes the parts."""

    digest: str
    size: int
    taken_at: float
    device: str  # digest of the device's part (SQLite bytes)
    contacts: dict[str, str] = field(default_factory=dict)  # contact -> digest of its part (encoded rows)

    @classmethod
    def parse(cls, raw: bytes) -> SnapshotInfo:
        meta = json.loads(raw)
        contacts = {str(k): str(v) for k, v in meta.get("contacts", {}).items()}
        return cls(
            str(meta["digest"]),
            int(meta["size"]),
            float(meta["taken_at"]),
            str(meta.get("device", meta["digest"])),
            contacts,
        )

    def encode(self) -> bytes:
        meta = {
            "format": SNAPSHOT_FORMAT,
            "digest": self.digest,
            "size": self.size,
            "taken_at": self.taken_at,
            "device": self.device,
            "contacts": self.contacts,
        }
        return json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()

    def without(self, contacts: Sequence[str]) -> SnapshotInfo:
        kept = {c: d for c, d in self.contacts.items() if c not in contacts}
        return replace(self, digest=_whole(self.device, kept), contacts=kept)


def _whole(device: str, contacts: Mapping[str, str]) -> str:
    digest = hashlib.sha256(device.encode())
    for contact in sorted(contacts):
        digest.update(f"\n{contact}={contacts[contact]}".encode())
    return digest.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Snapshots:
    """Moves one session's whatsmeow database between its file and the vault, in parts: the device's (the database
    without the contacts' encryption rows) and one per contact (:mod:`wagate.engines.neonize.rows`)."""

    def __init__(self, file: WhatsmeowFile, auth: AuthState, clock: Clock) -> None:
        self.file = file
        self._auth = auth
        self._clock = clock
        self._stamp: tuple[int, ...] | None = None
        self._copied: str | None = None  # digest of the last copy of the file split into the vault's parts
        self._known: SnapshotInfo | None = None  # the vault's snapshot, as this connection last read or wrote it
        self.dropped: list[str] = []  # contacts (JIDs) whose damaged parts the last ``prepare`` dropped
        self.taken = 0

    async def latest(self) -> SnapshotInfo | None:
        stored = await self._auth.get_many(NAMESPACE, [META_KEY])
        return SnapshotInfo.parse(stored[META_KEY]) if META_KEY in stored else None

    async def prepare(self) -> bool:
        """Make the file match the vault before whatsmeow opens it; True when a linked device is there.

        No snapshot in the vault means nothing is linked (never paired, logged out, wiped by a reset): whatever
        file is here belongs to the past and is removed, so that whatsmeow starts a new link. A contact's part that
        does not open is dropped (from the vault too) and the contact named in ``dropped``: its sessions start
        over. The device's part not opening (or not matching its digest) raises ``DamagedRecord`` naming
        ``DEVICE_RECORDS``, which only go back together: nothing can start from it.
        """
        self.dropped = []
        try:
            latest = await self.latest()
        except DamagedRecord:
            raise DamagedRecord(DEVICE_RECORDS) from None
        if latest is None:
            await asyncio.to_thread(self.file.remove)
            return False
        if not (self.file.exists() and self.file.synced() == latest.digest):
            device = await self._device_part(latest)
            parts, damaged = await self._contact_parts(latest)
            if damaged:
                latest = latest.without(damaged)
                await self._auth.put_many(
                    {(NAMESPACE, META_KEY): latest.encode()}, deletes=[(CONTACT_NS, c) for c in damaged]
                )
                self.dropped = [rows.contact_jid(c) for c in damaged]
            await asyncio.to_thread(self._materialise, device, parts, latest.digest)
        self._known = latest
        return await asyncio.to_thread(self.file.has_device)

    async def _device_part(self, latest: SnapshotInfo) -> bytes:
        try:
            stored = await self._auth.get_many(NAMESPACE, [DB_KEY])
            data = zlib.decompress(stored[DB_KEY])
        except (DamagedRecord, KeyError, zlib.error):
            raise DamagedRecord(DEVICE_RECORDS) from None
        if _sha(data) != latest.device:
            raise DamagedRecord(DEVICE_RECORDS)
        return data

    async def _contact_parts(self, latest: SnapshotInfo) -> tuple[list[bytes], list[str]]:
        """The contacts' parts that open, and the contacts whose parts do not."""
        keys = sorted(latest.contacts)
        if not keys:
            return [], []
        try:
            stored, damaged = await self._auth.get_many(CONTACT_NS, keys), []
        except DamagedRecord as exc:
            stored, damaged = exc.readable, exc.keys
        return [zlib.decompress(stored[key]) for key in keys if key in stored], damaged

    def _materialise(self, device: bytes, contacts: list[bytes], digest: str) -> None:
        self.file.write(device)
        rows.put_back(str(self.file.path), contacts)
        self.file.mark_synced(digest)

    async def take(self, *, force: bool = False) -> bool:
        """Seal the database into the vault if it changed since the last snapshot: the parts that changed, the
        contacts' parts that are gone deleted, in one write; True when one was written. ``force`` reads the file
        even when its stamp looks unchanged (a write may land within the clock's tick)."""
        if not self.file.exists():
            return False
        stamp = self.file.stamp()
        if not force and stamp == self._stamp:
            return False
        data = await asyncio.to_thread(self.file.backup)
        copied = _sha(data)
        wrote = copied != self._copied and await self._store(data)
        self._copied = copied
        self._stamp = stamp
        self.file.protect()
        return wrote

    async def _store(self, data: bytes) -> bool:
        split = await asyncio.to_thread(rows.split, data)
        device = _sha(split.device)
        contacts = {contact: _sha(part)[:32] for contact, part in split.contacts.items()}  # 128 bits tell a change
        digest = _whole(device, contacts)
        known = self._known
        if known is not None and known.digest == digest:
            return False
        before = known.contacts if known is not None else {}
        records = {
            (CONTACT_NS, c): zlib.compress(split.contacts[c], 6) for c, d in contacts.items() if before.get(c) != d
        }
        if known is None or known.device != device:
            records[(NAMESPACE, DB_KEY)] = zlib.compress(split.device, 6)
        info = SnapshotInfo(digest, len(data), self._clock(), device, contacts)
        records[(NAMESPACE, META_KEY)] = info.encode()
        await self._auth.put_many(records, deletes=[(CONTACT_NS, c) for c in before if c not in contacts])
        await asyncio.to_thread(self.file.mark_synced, digest)
        self._known = info
        self.taken += 1
        return True

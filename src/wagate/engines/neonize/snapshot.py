"""whatsmeow's own database, kept in the vault.

neonize keeps a session's credentials in whatsmeow's SQL tables and offers no way to plug in another store, so each
session gets a SQLite file of its own in a runtime directory, and the vault keeps sealed snapshots of it (SQLite's
online backup, compressed): taken at pairing, at every connect, on change at a bounded interval and at every graceful
stop; materialised before the engine starts when this machine's file is missing or older than the vault's (a fresh
machine, a redeploy, another worker that ran the session since).

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
from dataclasses import dataclass
from pathlib import Path

from wagate.clock import Clock
from wagate.errors import CryptoError
from wagate.store.base import AuthState

NAMESPACE = "whatsmeow"
DB_KEY = "db"
META_KEY = "meta"

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
    digest: str
    size: int
    taken_at: float


class Snapshots:
    """Moves one session's whatsmeow database between its file and the vault."""

    def __init__(self, file: WhatsmeowFile, auth: AuthState, clock: Clock) -> None:
        self.file = file
        self._auth = auth
        self._clock = clock
        self._stamp: tuple[int, ...] | None = None
        self._digest: str | None = None
        self.taken = 0

    async def latest(self) -> SnapshotInfo | None:
        stored = await self._auth.get_many(NAMESPACE, [META_KEY])
        if META_KEY not in stored:
            return None
        meta = json.loads(stored[META_KEY])
        return SnapshotInfo(str(meta["digest"]), int(meta["size"]), float(meta["taken_at"]))

    async def prepare(self) -> bool:
        """Make the file match the vault before whatsmeow opens it; True when a linked device is there.

        No snapshot in the vault means nothing is linked (never paired, logged out, wiped by a reset): whatever
        file is here belongs to the past and is removed, so that whatsmeow starts a new link.
        """
        latest = await self.latest()
        if latest is None:
            await asyncio.to_thread(self.file.remove)
            return False
        if not (self.file.exists() and self.file.synced() == latest.digest):
            stored = await self._auth.get_many(NAMESPACE, [DB_KEY])
            if DB_KEY not in stored:
                raise CryptoError("the session's whatsmeow snapshot is incomplete")
            data = zlib.decompress(stored[DB_KEY])
            if hashlib.sha256(data).hexdigest() != latest.digest:
                raise CryptoError("the session's whatsmeow snapshot does not match its digest")
            await asyncio.to_thread(self._materialise, data, latest.digest)
        self._digest = latest.digest
        return await asyncio.to_thread(self.file.has_device)

    def _materialise(self, data: bytes, digest: str) -> None:
        self.file.write(data)
        self.file.mark_synced(digest)

    async def take(self, *, force: bool = False) -> bool:
        """Seal the database into the vault if it changed since the last snapshot; True when one was written.
        ``force`` reads the file even when its stamp looks unchanged (a write may land within the clock's tick)."""
        if not self.file.exists():
            return False
        stamp = self.file.stamp()
        if not force and stamp == self._stamp:
            return False
        data = await asyncio.to_thread(self.file.backup)
        digest = hashlib.sha256(data).hexdigest()
        wrote = digest != self._digest
        if wrote:
            meta = {"digest": digest, "size": len(data), "taken_at": self._clock()}
            await self._auth.put_many(
                {(NAMESPACE, DB_KEY): zlib.compress(data, 6), (NAMESPACE, META_KEY): json.dumps(meta).encode()}
            )
            await asyncio.to_thread(self.file.mark_synced, digest)
            self._digest = digest
            self.taken += 1
        self._stamp = stamp
        self.file.protect()
        return wrote

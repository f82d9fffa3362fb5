"""whatsmeow's per-contact rows: taken out of a copy of its database, and put back into a file.

What whatsmeow keeps of each contact's encryption (its Signal sessions with every device of the contact, the identity
keys it saw, the sender keys the contact uses in groups) is kept in the vault apart from the rest of the database, one
record per contact, so that bytes damaged at rest cost one contact's sessions, which the contact re-establishes (a
message that fails to decrypt makes whatsmeow send a retry receipt), and not the link. Everything else (the device's
own keys, pre-keys, app state, contacts' names) is the device's.

Contacts are keyed by the user part of their Signal address: ``15550002`` for ``15550002:3``, ``123_1`` (a LID user)
for ``123_1:0``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTACT_TABLES", "Split", "contact_jid", "contact_of", "put_back", "split"]

# Each per-contact table, with the column that holds the contact's Signal address (``user[_agent]:device``).
CONTACT_TABLES = {
    "whatsmeow_sessions": "their_id",
    "whatsmeow_identity_keys": "their_id",
    "whatsmeow_sender_keys": "sender_id",
}
# Signal address agents and the servers of their users (whatsmeow's types.JID.ActualAgent).
_AGENT_SERVERS = {"1": "lid", "128": "hosted", "129": "hosted.lid"}


@dataclass(frozen=True, slots=True)
class Split:
    """A database without its per-contact rows (``device``, SQLite bytes), and those rows by contact (encoded)."""

    device: bytes
    contacts: dict[str, bytes]


def contact_of(address: str) -> str:
    """The contact (``user[_agent]``) a Signal address (``user[_agent]:device``) belongs to."""
    return address.rsplit(":", 1)[0] if ":" in address else address


def contact_jid(contact: str) -> str:
    """The JID of a contact key: ``15550002@s.whatsapp.net``, ``123@lid``."""
    user, _, agent = contact.partition("_")
    return f"{user}@{_AGENT_SERVERS.get(agent, 's.whatsapp.net')}"


def split(data: bytes) -> Split:
    """Take the per-contact rows out of a database (its bytes); the rest is compacted, so that it holds none of them."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.deserialize(_rollback_journal(data))
        tables = _tables(db)
        by_contact: dict[str, dict[str, dict[str, Any]]] = {}
        for table, column in CONTACT_TABLES.items():
            if table not in tables:
                continue
            cursor = db.execute(f"SELECT * FROM {table}")  # noqa: S608 - a name from CONTACT_TABLES
            columns = [d[0] for d in cursor.description]
            at = columns.index(column)
            for row in cursor:
                part = by_contact.setdefault(contact_of(str(row[at])), {})
                part.setdefault(table, {"columns": columns, "rows": []})["rows"].append(row)
            db.execute(f"DELETE FROM {table}")  # noqa: S608
        db.commit()
        db.execute("VACUUM")
        device = db.serialize()
    return Split(device, {contact: _encode(part) for contact, part in by_contact.items()})


def put_back(path: str, parts: list[bytes]) -> None:
    """Insert contacts' rows (as ``split`` encoded them) into the database at ``path``, in one transaction; tables
    or columns the database does not have are left out."""
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        known = {table: _columns(db, table) for table in _tables(db) if table in CONTACT_TABLES}
        for part in parts:
            for table, content in json.loads(part).items():
                columns = content["columns"]
                if table not in known or not set(columns) <= known[table]:
                    continue
                names = ", ".join(columns)
                marks = ", ".join("?" for _ in columns)
                rows = [tuple(_decode(value) for value in row) for row in content["rows"]]
                db.executemany(f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608
        db.commit()


def _rollback_journal(data: bytes) -> bytes:
    """The database with its header saying "rollback journal" rather than "write-ahead log", which a database in
    memory cannot open (bytes 18 and 19: the file format's write and read versions, 2 for WAL)."""
    if data[18:20] != b"\x02\x02":
        return data
    return data[:18] + b"\x01\x01" + data[20:]


def _tables(db: sqlite3.Connection) -> set[str]:
    return {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def _encode(part: dict[str, dict[str, Any]]) -> bytes:
    """One contact's rows as JSON, in a stable order (so that unchanged rows give the same bytes); a blob is a
    one-element list of its base64."""
    out = {}
    for table, content in sorted(part.items()):
        rows = sorted(([_encoded(v) for v in row] for row in content["rows"]), key=repr)
        out[table] = {"columns": content["columns"], "rows": rows}
    return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()


def _encoded(value: object) -> object:
    return [base64.b64encode(value).decode()] if isinstance(value, bytes) else value


def _decode(value: object) -> object:
    return base64.b64decode(value[0]) if isinstance(value, list) else value

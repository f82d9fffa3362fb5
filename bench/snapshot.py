"""One neonize snapshot after one contact's encryption session moved on: whole versus in parts.

    python bench/snapshot.py --contacts 500 --rounds 41

whatsmeow's database is made by neonize itself (an offline start: it creates its tables, then fails to dial), filled
like a linked device's (a device row, pre-keys, names, and for each contact two Signal sessions, two identity keys and
a group sender key), in a fresh SQLite store (a temporary directory). Each round changes one contact's session row
(what one message does) and then takes a snapshot two ways, interleaved, each into the real vault (sealed, fenced,
committed): ``whole``, the former way (the whole database, compressed, in one record, with its meta), and ``parts``
(``Snapshots.take``: only the parts that changed). Prints one JSON line: the median and the spread (min-max) of each
way's wall time, the sealed bytes each wrote per snapshot, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import statistics
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

from wagate.clock import system_clock
from wagate.config import Settings
from wagate.domain.sessions import Desired, NewSession, Quotas, Session
from wagate.engines.base import EngineConnectError, EngineContext, EngineEvent, StateChanges
from wagate.engines.neonize.engine import NeonizeEngine
from wagate.engines.neonize.options import NeonizeOptions
from wagate.engines.neonize.snapshot import DB_KEY, META_KEY, NAMESPACE
from wagate.gateway import Gateway
from wagate.store.vault import Vault

OUR = "15550001:7@s.whatsapp.net"
KEK = "b1:" + base64.b64encode(bytes(range(32))).decode()


def fill(path: Path, contacts: int) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key,"
            " signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key,"
            " adv_device_sig) VALUES (?, 5, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (OUR, *(os.urandom(n) for n in (32, 32, 32, 64, 32, 16, 64, 32, 64))),
        )
        db.executemany(
            "INSERT INTO whatsmeow_pre_keys VALUES (?, ?, ?, 1)", [(OUR, i, os.urandom(32)) for i in range(800)]
        )
        for i in range(contacts):
            user = f"1555{i:07d}"
            db.execute(
                "INSERT INTO whatsmeow_contacts (our_jid, their_jid, full_name) VALUES (?, ?, ?)", (OUR, user, f"C{i}")
            )
            for device in (0, 1):
                address = f"{user}:{device}"
                db.execute("INSERT INTO whatsmeow_sessions VALUES (?, ?, ?)", (OUR, address, os.urandom(1500)))
                db.execute("INSERT INTO whatsmeow_identity_keys VALUES (?, ?, ?)", (OUR, address, os.urandom(32)))
            db.execute(
                "INSERT INTO whatsmeow_sender_keys VALUES (?, 'g@g.us', ?, ?)", (OUR, f"{user}:0", os.urandom(200))
            )
        db.commit()


def move_on(path: Path, contact: int) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "UPDATE whatsmeow_sessions SET session = ? WHERE their_id = ?", (os.urandom(1500), f"1555{contact:07d}:0")
        )
        db.commit()


async def whole(vault: Vault, path: Path) -> None:
    """The former snapshot: the whole database, compressed, in one record, and its meta."""
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(":memory:")) as copy:
        source.backup(copy)
        data = copy.serialize()
    meta = {"digest": hashlib.sha256(data).hexdigest(), "size": len(data), "taken_at": time.time()}
    await vault.put_many(
        {(NAMESPACE, DB_KEY): zlib.compress(data, 6), (NAMESPACE, META_KEY): json.dumps(meta).encode()}
    )


async def stored(gateway: Gateway, session: Session) -> dict[tuple[str, str], tuple[int, int]]:
    """Each stored record's version and sealed size."""
    records = await gateway.store.auth.read_all(session.tenant_id, session.id)
    return {(r.namespace, r.key): (r.version, len(r.value)) for r in records}


def written(before: dict[tuple[str, str], tuple[int, int]], after: dict[tuple[str, str], tuple[int, int]]) -> int:
    """Sealed bytes of the records written between two readings."""
    return sum(size for key, (version, size) in after.items() if before.get(key, (0, 0))[0] != version)


async def linked_session(gateway: Gateway) -> tuple[Session, EngineContext]:
    tenant = await gateway.store.tenants.create("bench", contact_email=None, max_sessions=None)
    new = NewSession(tenant.id, "s", "neonize", {}, Desired.RUNNING)
    session = await gateway.store.sessions.create(new, quotas=Quotas(5, 5), actor="bench")
    lease = await gateway.store.leases.acquire(session.id, "bench", ttl=3600)
    assert lease is not None
    vault = gateway.vaults.open(tenant.id, session.id, owner="bench", epoch=lease.epoch)

    async def ignore(event: EngineEvent) -> None:
        return None

    async def ignore_many(events: Sequence[EngineEvent], state: StateChanges | None = None) -> None:
        return None

    log = logging.LoggerAdapter(logging.getLogger("bench"), {})
    ctx = EngineContext(tenant.id, session.id, "s", vault, ignore, ignore_many, log, {}, lease.epoch, system_clock)
    return session, ctx


async def run(contacts: int, rounds: int) -> dict[str, object]:
    times: dict[str, list[float]] = {"whole": [], "parts": []}
    sizes: dict[str, list[int]] = {"whole": [], "parts": []}
    with tempfile.TemporaryDirectory(prefix="wagate-bench-") as tmp:
        settings = Settings.model_validate({"data_dir": tmp, "keys": KEK, "neonize_probe": ""})
        gateway = await Gateway.open(settings)
        try:
            session, ctx = await linked_session(gateway)
            engine = NeonizeEngine(NeonizeOptions.from_settings(settings, sessions=1))
            creating = engine.open(ctx)
            with contextlib.suppress(EngineConnectError):
                await creating.connect()  # offline: neonize creates its tables, then fails to dial
            await creating.disconnect()
            path = creating.file.path
            fill(path, contacts)
            database_bytes = path.stat().st_size
            snapshots = engine.open(ctx).snapshots
            assert await snapshots.take(force=True)
            assert isinstance(ctx.auth, Vault)
            for n in range(rounds):
                for way in ("whole", "parts") if n % 2 else ("parts", "whole"):
                    move_on(path, n % contacts)
                    before = await stored(gateway, session)
                    started = time.perf_counter()
                    if way == "whole":
                        await whole(ctx.auth, path)
                    else:
                        assert await snapshots.take(force=True)
                    times[way].append(time.perf_counter() - started)
                    sizes[way].append(written(before, await stored(gateway, session)))
            await engine.close()
        finally:
            await gateway.close()
    out: dict[str, object] = {"contacts": contacts, "rounds": rounds, "database_bytes": database_bytes}
    medians = {}
    for way in ("whole", "parts"):
        ms = sorted(t * 1000 for t in times[way])
        medians[way] = statistics.median(ms)
        out[f"{way}_ms_median"] = round(medians[way], 2)
        out[f"{way}_ms_spread"] = [round(ms[0], 2), round(ms[-1], 2)]
        out[f"{way}_sealed_bytes_median"] = int(statistics.median(sizes[way]))
    out["parts_over_whole_time"] = round(medians["parts"] / medians["whole"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="a neonize snapshot: whole versus in parts")
    parser.add_argument("--contacts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.contacts, args.rounds))))


if __name__ == "__main__":
    main()

"""Credential writes: wagate's vault on SQLite and PostgreSQL, raw asyncpg, and Baileys' useMultiFileAuthState.

    python bench/credentials.py --rounds 5
    python bench/credentials.py --rounds 5 --variants postgresql,postgresql-direct

The workload (as the project's performance issue states it): ``--sessions`` sessions write concurrently, each
``--messages`` times one ``--key-bytes`` signal session record (the record of one of ``--contacts`` contacts,
rewritten), and every ``--batch-every`` messages a batch of ``--batch-keys`` new pre-keys (a key pair, 64 bytes);
each write is awaited before the next, as an engine awaits it before acknowledging. Variants:

- ``sqlite``, ``postgresql``: wagate's vault (``Vault.put_many``, the call the engines make) with ``Vaults`` made as
  the gateway makes them, sealed and fenced by the lease, on SQLite (a temporary file, ``synchronous=FULL``) and on
  PostgreSQL (``--url``, a database of the benchmark's own: its commit count is the benchmark's alone);
- ``postgresql-direct``: the same with a transaction per write (``Vaults(combine=False)``, the path before group
  commit on PostgreSQL);
- ``asyncpg``: raw asyncpg writing the very rows (sealed) of the latest ``postgresql`` run, in the same
  transactions (each: the lease fence, then one upsert of its rows), durably committed: the local limit at equal
  durability and equal grouping;
- ``baileys``: ``@whiskeysockets/baileys``'s own ``useMultiFileAuthState`` (pinned in ``bench/baileys``, installed
  with ``npm ci``), one folder per session, no fsync at all. Skipped, saying why, where Node or npm is missing.

Rounds are interleaved (each round rotates the order). Every run prints a JSON line (for the PostgreSQL variants with
the commits the server counted, ``pg_stat_database.xact_commit``, and keys per commit); then, per variant, the median
keys/s with its min and max and the median [min, max] of the rounds' ratios against Baileys and asyncpg; last, those
medians on one line, for ``bench/ab.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from wagate.crypto.keyring import Keyring
from wagate.domain.auth import AuthWrite
from wagate.domain.sessions import Desired, NewSession, Quotas
from wagate.errors import LeaseLost
from wagate.store import open_store
from wagate.store.base import Store
from wagate.store.vault import Vault, Vaults

BAILEYS = Path(__file__).resolve().parent / "baileys"
DATABASE = "wagate_bench_credentials"
VARIANTS = ("sqlite", "postgresql", "postgresql-direct", "asyncpg", "baileys")
Batches = list[list[AuthWrite]]


def messages(args: argparse.Namespace) -> list[dict[tuple[str, str], bytes]]:
    """One session's writes, in order (as bench/baileys/credentials.js makes them)."""
    writes: list[dict[tuple[str, str], bytes]] = []
    pre_key = 1
    for n in range(args.messages):
        writes.append({("session", f"1555{n % args.contacts:07d}.0"): os.urandom(args.key_bytes)})
        if (n + 1) % args.batch_every == 0:
            writes.append({("pre-key", str(pre_key + k)): os.urandom(64) for k in range(args.batch_keys)})
            pre_key += args.batch_keys
    return writes


async def sessions(store: Store, vaults: Vaults, count: int) -> list[Vault]:
    """``count`` sessions with their leases taken and their data keys made (the keys outside the timed part)."""
    tenant = await store.tenants.create(f"bench-{secrets.token_hex(4)}", contact_email=None, max_sessions=None)
    opened = []
    for n in range(count):
        made = await store.sessions.create(
            NewSession(tenant.id, f"s{n}", "sim", {}, Desired.RUNNING), quotas=Quotas(count, count), actor="bench"
        )
        lease = await store.leases.acquire(made.id, "bench", ttl=3600)
        assert lease is not None
        await vaults.data_key(tenant.id, made.id, create=True)
        opened.append(vaults.open(tenant.id, made.id, owner="bench", epoch=lease.epoch))
    return opened


async def xact_commits(admin_dsn: str) -> int:
    """Transactions committed in the benchmark's database so far (as the server counts them). Read from another
    database, so that reading does not count; callers close their connections first (a backend reports its counts
    when it ends)."""
    await asyncio.sleep(0.5)
    conn = await asyncpg.connect(admin_dsn)
    try:
        value = await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", DATABASE)
        return int(value)
    finally:
        await conn.close()


async def wagate(args: argparse.Namespace, url: str, *, combine: bool, record: Batches | None) -> dict[str, Any]:
    keyring = Keyring({"k1": bytes(32)}, "k1")
    schema = None if url.startswith("sqlite") else "bench_" + secrets.token_hex(4)
    if schema is not None:
        await execute(url, f"CREATE SCHEMA {schema}")
    store = await open_store(url, schema=schema)
    try:
        vaults = Vaults(store.auth, keyring) if combine else Vaults(store.auth, keyring, combine=False)
        opened = await sessions(store, vaults, args.sessions)
        work = [messages(args) for _ in opened]
        if record is not None:  # the transactions as they go to the store, for the asyncpg replay
            write_many = store.auth.write_many

            async def recording(writes: Sequence[AuthWrite]) -> list[LeaseLost | None]:
                record.append(list(writes))
                return await write_many(writes)

            store.auth.write_many = recording  # type: ignore[method-assign]
        commits = None
        if schema is not None:
            await store.db.dispose()  # type: ignore[attr-defined]  # its backends report their counts
            commits = await xact_commits(args.admin_dsn)

        async def run(vault: Vault, writes: list[dict[tuple[str, str], bytes]]) -> int:
            for records in writes:
                await vault.put_many(records)
            return sum(len(records) for records in writes)

        started = time.perf_counter()
        keys = sum(await asyncio.gather(*(run(v, w) for v, w in zip(opened, work, strict=True))))
        seconds = time.perf_counter() - started
        out: dict[str, Any] = {"keys": keys, "seconds": round(seconds, 3), "keys_per_s": round(keys / seconds)}
        if record is not None:
            out["transactions"] = len(record)
        if commits is not None:
            await store.db.dispose()  # type: ignore[attr-defined]
            out["commits"] = await xact_commits(args.admin_dsn) - commits
            out["keys_per_commit"] = round(keys / out["commits"], 2)
        return out
    finally:
        await store.close()
        if schema is not None:
            await execute(url, f"DROP SCHEMA {schema} CASCADE")


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


FENCE = "UPDATE session_leases SET epoch = epoch WHERE (session_id, owner, epoch) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))"  # noqa: E501
UPSERT = (
    "INSERT INTO auth_records (session_id, tenant_id, namespace, key, version, value, updated_at) "
    "SELECT s, t, n, k, 1, v, u FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], "
    "$6::float8[]) AS r(s, t, n, k, v, u) ON CONFLICT (session_id, namespace, key) DO UPDATE SET "
    "value = excluded.value, updated_at = excluded.updated_at, version = auth_records.version + 1"
)


async def raw_asyncpg(args: argparse.Namespace, url: str, batches: Batches) -> dict[str, Any]:
    """``batches`` (the writes of a ``postgresql`` run, sealed) replayed in as many transactions, on tables made by
    wagate's migrations, for sessions of the same number holding their leases."""
    schema = "bench_" + secrets.token_hex(4)
    await execute(url, f"CREATE SCHEMA {schema}")
    try:
        store = await open_store(url, schema=schema)
        try:
            opened = await sessions(store, Vaults(store.auth, Keyring({"k1": bytes(32)}, "k1")), args.sessions)
        finally:
            await store.close()
        recorded = sorted({w.session_id for batch in batches for w in batch})
        ids = {old: (v.session_id, v.tenant_id, v.epoch) for old, v in zip(recorded, opened, strict=True)}
        conn = await asyncpg.connect(dsn(url), server_settings={"search_path": schema})
        try:
            commits = await xact_commits(args.admin_dsn)
            fence, upsert = await conn.prepare(FENCE), await conn.prepare(UPSERT)
            keys = 0
            started = time.perf_counter()
            for batch in batches:
                held = sorted({ids[w.session_id] for w in batch})
                rows: dict[tuple[str, str, str], tuple[Any, ...]] = {}
                now = time.time()
                for w in batch:
                    session_id, tenant_id, _ = ids[w.session_id]
                    for (ns, key), value in w.upserts.items():
                        rows[(session_id, ns, key)] = (session_id, tenant_id, ns, key, value, now)
                async with conn.transaction():
                    await fence.fetch([s for s, _, _ in held], ["bench"] * len(held), [e for _, _, e in held])
                    await upsert.fetch(*(list(column) for column in zip(*rows.values(), strict=True)))
                keys += sum(len(w.upserts) for w in batch)
            seconds = time.perf_counter() - started
        finally:
            await conn.close()
        made = await xact_commits(args.admin_dsn) - commits
        return {
            "keys": keys,
            "seconds": round(seconds, 3),
            "keys_per_s": round(keys / seconds),
            "transactions": len(batches),
            "commits": made,
            "keys_per_commit": round(keys / made, 2),
        }
    finally:
        await execute(url, f"DROP SCHEMA {schema} CASCADE")


def baileys_ready() -> str | None:
    """None when the reference can run (its packages installed from the lockfile); otherwise why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js or npm is not installed: the Baileys reference is skipped"
    if not (BAILEYS / "node_modules" / "@whiskeysockets" / "baileys").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=BAILEYS, capture_output=True, text=True
        )
        if done.returncode != 0:
            return f"npm ci failed in {BAILEYS}: the Baileys reference is skipped ({done.stderr.strip()[-300:]})"
    return None


def baileys(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wagate-bench-baileys-") as tmp:
        command = ["node", str(BAILEYS / "credentials.js"), "--dir", tmp, "--sessions", str(args.sessions)]
        for name in ("messages", "key_bytes", "contacts", "batch_every", "batch_keys"):
            command += ["--" + name.replace("_", "-"), str(getattr(args, name))]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["keys_per_s"] = round(result["keys_per_s"])
    return result


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant: keys/s [median, min, max], and the medians of the rounds' ratios against the references."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        speeds = [r["keys_per_s"] for r in mine]
        row: dict[str, Any] = {"variant": variant, "keys_per_s": [statistics.median(speeds), min(speeds), max(speeds)]}
        for reference in ("baileys", "asyncpg"):
            ratios = []
            for r in mine:
                other = [o for o in runs if o["variant"] == reference and o["round"] == r["round"]]
                if other and reference != variant:
                    ratios.append(r["keys_per_s"] / other[0]["keys_per_s"])
            if ratios:
                row[f"vs_{reference}"] = [round(x, 2) for x in (statistics.median(ratios), min(ratios), max(ratios))]
        if "keys_per_commit" in mine[0]:
            row["keys_per_commit"] = statistics.median(r["keys_per_commit"] for r in mine)
        out.append(row)
    return out


async def main_async(args: argparse.Namespace) -> None:
    variants = [v for v in args.variants.split(",") if v]
    if "baileys" in variants:
        why = baileys_ready()
        if why is not None:
            print(json.dumps({"skipped": "baileys", "why": why}), flush=True)
            variants.remove("baileys")
    pg_url = make_url(args.url).set(drivername="postgresql+asyncpg", database=DATABASE)
    pg = pg_url.render_as_string(hide_password=False)
    args.admin_dsn = dsn(args.url)
    await execute(args.url, f"DROP DATABASE IF EXISTS {DATABASE}")
    await execute(args.url, f"CREATE DATABASE {DATABASE}")
    conn = await asyncpg.connect(args.admin_dsn)
    try:
        settings = {name: await conn.fetchval(f"SHOW {name}") for name in ("fsync", "synchronous_commit")}
    finally:
        await conn.close()
    print(json.dumps({"postgresql": settings}), flush=True)
    batches: Batches = []
    try:
        if "asyncpg" in variants:  # a first run of the PostgreSQL path, for the batches asyncpg replays
            await wagate(args, pg, combine=True, record=batches)
        runs = []
        for number in range(args.rounds):
            shift = number % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                with tempfile.TemporaryDirectory(prefix="wagate-bench-credentials-") as tmp:
                    if variant == "sqlite":
                        url = f"sqlite+aiosqlite:///{Path(tmp) / 'wagate.db'}"
                        result = await wagate(args, url, combine=True, record=None)
                    elif variant == "postgresql":
                        fresh: Batches = []
                        result = await wagate(args, pg, combine=True, record=fresh)
                        batches = fresh
                    elif variant == "postgresql-direct":
                        result = await wagate(args, pg, combine=False, record=None)
                    elif variant == "asyncpg":
                        result = await raw_asyncpg(args, pg, batches)
                    else:
                        result = await asyncio.to_thread(baileys, args)
                run = {"variant": variant, "round": number + 1, **result}
                runs.append(run)
                print(json.dumps(run), flush=True)
    finally:
        await execute(args.url, f"DROP DATABASE IF EXISTS {DATABASE}")
    rows = summary(runs)
    for row in rows:
        print(json.dumps(row))
    # Last, the medians on one flat line (what bench/ab.py compares between two versions).
    print(json.dumps({f"{r['variant']}_{k}": v[0] for r in rows for k, v in r.items() if isinstance(v, list)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(v for v in VARIANTS if v != "postgresql-direct"))
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--key-bytes", type=int, default=1536)
    parser.add_argument("--contacts", type=int, default=50)
    parser.add_argument("--batch-every", type=int, default=100)
    parser.add_argument("--batch-keys", type=int, default=30)
    parser.add_argument("--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test", help="PostgreSQL")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

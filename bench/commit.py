"""CPU of the supervisor's group commit of received messages, in one process, without the network.

    python bench/commit.py --batch 25 --rounds 200
    python bench/commit.py --batch 100 --rounds 200 --url postgresql+asyncpg://postgres@127.0.0.1:5432/test

A store (SQLite in a temporary directory unless ``--url``) with 20 sessions holding their leases and one webhook for
``message`` (``--webhooks``: how many; 0 writes no outbox rows). Each round commits ``--batch`` received
messages spread over the sessions, as the status recorder does: every message with its sealed body and its event,
one outbox row per message and endpoint, and one ratchet record per session (fenced), all in one transaction. Prints
one JSON line: CPU microseconds per message of this process (both its threads: the loop's, and SQLite's writer), and
the wall time per commit. On PostgreSQL the server's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from harness import fresh_schema

from wagate.crypto.keyring import Keyring
from wagate.crypto.sealer import KeyringSealer
from wagate.domain.events import Event, EventType
from wagate.domain.messages import Append, InboundMessage, MessageKind
from wagate.domain.sessions import Desired, NewSession, Quotas
from wagate.ids import SessionId, new_session_id
from wagate.store import open_store
from wagate.store.vault import Vault, Vaults

CONTACT = "15550100@s.whatsapp.net"


async def run(args: argparse.Namespace, url: str, schema: str | None) -> dict[str, float]:
    keyring = Keyring({"k1": bytes(32)}, "k1")
    store = await open_store(url, schema=schema, sealer=KeyringSealer(keyring))
    try:
        tenant = await store.tenants.create(f"bench-{new_session_id()}", contact_email=None, max_sessions=None)
        vaults = Vaults(store.auth, keyring)
        sessions: list[tuple[SessionId, str, Vault]] = []
        for n in range(20):
            made = await store.sessions.create(
                NewSession(tenant.id, f"s{n}", "sim", {}, Desired.RUNNING), quotas=Quotas(100, 100000), actor="bench"
            )
            lease = await store.leases.acquire(made.id, "bench", ttl=3600)
            assert lease is not None
            sessions.append((made.id, made.name, vaults.open(tenant.id, made.id, owner="bench", epoch=lease.epoch)))
        for _ in range(args.webhooks):
            await store.webhooks.create(
                tenant.id, "http://127.0.0.1:9/hook", ["message"], None, "whsec_" + "QUFB" * 8, limit=10
            )
        counter = 0

        async def commit() -> None:
            nonlocal counter
            by_session: dict[int, list[InboundMessage]] = {}
            for _ in range(args.batch):
                counter += 1
                index = counter % len(sessions)
                session_id, name, _ = sessions[index]
                now = time.time()
                payload = {"id": f"SIM{counter:016X}", "chat": CONTACT, "from": CONTACT, "text": f"bench #{counter}"}
                event = Event.new(EventType.MESSAGE, tenant.id, session_id, name, now, payload)
                by_session.setdefault(index, []).append(
                    InboundMessage(
                        tenant.id,
                        session_id,
                        payload["id"],
                        CONTACT,
                        CONTACT,
                        "Ann",
                        MessageKind.TEXT,
                        now,
                        os.urandom(60),
                        event,
                    )
                )
            appends = [
                Append((), messages, await sessions[i][2].sealed_write({("chain", CONTACT): os.urandom(40)}))
                for i, messages in by_session.items()
            ]
            await store.sessions.commit([], appends)

        for _ in range(20):  # warm-up: statements compiled, caches filled
            await commit()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.rounds):
            await commit()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {
            "batch": args.batch,
            "webhooks": args.webhooks,
            "rounds": args.rounds,
            "cpu_us_per_message": round(cpu / args.rounds / args.batch * 1e6, 1),
            "wall_ms_per_commit": round(wall / args.rounds * 1000, 2),
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--webhooks", type=int, default=1, help="endpoints subscribed (0: no outbox rows)")
    parser.add_argument("--url", default=None, help="a database URL; default: SQLite in a temporary directory")
    parser.add_argument("--schema", default=None, help="PostgreSQL: the schema to use (default: a new one, dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wagate-bench-commit-") as tmp:
        url = args.url or f"sqlite+aiosqlite:///{Path(tmp) / 'wagate.db'}"
        env = {"WAGATE_DATABASE_URL": url, **({"WAGATE_DATABASE_SCHEMA": args.schema} if args.schema else {})}
        with fresh_schema(env):
            print(json.dumps(asyncio.run(run(args, url, env.get("WAGATE_DATABASE_SCHEMA")))))


if __name__ == "__main__":
    main()

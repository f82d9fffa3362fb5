"""One batch of status changes, as the supervisor's recorder commits them in a mass restart.

    python bench/status_batch.py --sessions 2000

Creates N sessions in a fresh SQLite store (a temporary directory), takes their leases, and commits two batches of
N status changes (STOPPED -> STARTING, STARTING -> WORKING), each with its history rows and ``session.status``
events, through ``set_status_many``. Prints one JSON line with each batch's wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time

from wagate.domain.sessions import Desired, NewSession, Quotas, Status, StatusChange
from wagate.store import open_store


async def run(n: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="wagate-bench-") as tmp:
        store = await open_store(f"sqlite+aiosqlite:///{tmp}/wagate.db")
        try:
            tenant = await store.tenants.create("bench", contact_email=None, max_sessions=None)
            ids = []
            for i in range(n):
                new = NewSession(tenant_id=tenant.id, name=f"s{i}", engine="sim", config={}, desired=Desired.RUNNING)
                ids.append((await store.sessions.create(new, quotas=Quotas(n, n), actor="bench")).id)
            leases = await store.leases.acquire_many(ids, "bench", ttl=600)
            result: dict[str, float | int] = {"sessions": n}
            for status in (Status.STARTING, Status.WORKING):
                changes = [StatusChange(tenant.id, i, "bench", leases[i].epoch, status, None) for i in ids]
                wall, cpu = time.perf_counter(), time.process_time()
                applied = await store.sessions.set_status_many(changes)
                assert all(a is not None and a.status is status for a in applied)
                result[f"{status.value.lower()}_wall_s"] = round(time.perf_counter() - wall, 3)
                result[f"{status.value.lower()}_cpu_s"] = round(time.process_time() - cpu, 3)
            return result
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sessions))))


if __name__ == "__main__":
    main()

"""``wagate doctor`` as a real command: one line per check, what to do about each failure, exit 1 on any failure,
and nothing changed on disk or in the database."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from pathlib import Path

import pytest

from tests.support.builders import TEST_KEK, make_settings
from tests.support.procs import clean_env, free_port, run_wagate
from wagate.gateway import Gateway

pytestmark = pytest.mark.e2e

OTHER_KEK = "t2:" + base64.b64encode(bytes(range(1, 33))).decode()


def wagate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_wagate(*args, env=env)


def doctor(env: dict[str, str]) -> tuple[int, dict[str, list[str]], str]:
    """The exit code, each check's lines by name (outcome first), and stderr."""
    result = wagate(env, "doctor")
    checks: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        outcome, name, rest = line.split(maxsplit=2)
        checks.setdefault(name, []).append(f"{outcome} {rest}")
    return result.returncode, checks, result.stderr


async def seal_a_data_key(data: Path) -> None:
    """The session's data key, made and wrapped under the active key (t1) as its first message would make it."""
    gateway = await Gateway.open(make_settings(data, keys=TEST_KEK, active_key="t1"))
    try:
        (tenant,) = await gateway.store.tenants.list_all()
        session = await gateway.store.sessions.get(tenant.id, "main")
        assert session is not None
        assert await gateway.vaults.data_key(tenant.id, session.id, create=True) is not None
    finally:
        await gateway.close()


def test_a_sound_installation_passes_and_nothing_is_changed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(WAGATE_DATA_DIR=str(data), WAGATE_KEYS=TEST_KEK, WAGATE_DEFAULT_ENGINE="neonize")
    code, checks, _ = doctor(env)
    assert code == 0
    assert checks["settings"] == ["ok valid (development)"]
    assert checks["database"] == ["ok no SQLite file yet; the first start makes it"]
    assert not data.exists()  # neither the directory nor a database was made

    made = wagate(env, "tenants", "create", "acme")
    assert made.returncode == 0, made.stderr
    assert wagate(env, "sessions", "create", "--tenant", "acme", "main", "--no-start").returncode == 0
    asyncio.run(seal_a_data_key(data))
    before = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    code, checks, stderr = doctor(env)
    assert code == 0, (checks, stderr)
    assert checks["data-dir"] == [f"ok {data} is mode 0700"]
    assert checks["keys"] == ["ok 1 key(s) from WAGATE_KEYS, t1 active, seals and opens"]
    assert checks["database"][0].startswith("ok reachable, migrated (")
    assert checks["neonize"] == ["ok importable"]
    assert {p.name: p.stat().st_mtime_ns for p in data.iterdir()} == before
    assert TEST_KEK.split(":")[1] not in str(checks)

    # The stored data was sealed under t1: with only another key, the keys still load, but the data cannot open.
    code, checks, stderr = doctor({**env, "WAGATE_KEYS": OTHER_KEK})
    assert code == 1
    assert checks["sealed"] == [
        "FAIL data sealed under key(s) t1, which the keys lack; add those keys back to WAGATE_KEYS"
        " (wagate keys rotate moves off)"
    ]
    assert stderr.strip() == "1 check(s) failed: sealed"


def test_each_failure_is_named_with_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "notes.txt").write_text("x")
    (data / "notes.txt").chmod(0o644)
    env = clean_env(
        WAGATE_DATA_DIR=str(data),
        WAGATE_ENV="production",
        WAGATE_ADMIN_KEY="a" * 40,
        WAGATE_DEFAULT_ENGINE="sim",
        WAGATE_DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/none",
    )
    code, checks, stderr = doctor(env)
    assert code == 1
    assert checks["data-dir"] == [f"FAIL {data} is mode 0755; chmod 700 {data} (a start does it too)"]
    assert checks["files"] == [f"FAIL readable by others: notes.txt (0644); chmod 600 those files in {data}"]
    assert checks["keys"][0].startswith("FAIL WAGATE_ENV=production needs encryption keys")
    assert checks["database"][0].startswith("FAIL cannot read the database at postgresql://nobody@127.0.0.1:")
    assert checks["database"][0].endswith("; check WAGATE_DATABASE_URL and that the database runs")
    assert checks["sim"] == ["FAIL the sim engine is used but WAGATE_SIM_URL is unset; set it, or use --demo"]
    assert stderr.strip() == "5 check(s) failed: data-dir, files, keys, database, sim"
    assert (data.stat().st_mode & 0o777, (data / "notes.txt").stat().st_mode & 0o777) == (0o755, 0o644)

    code, checks, _ = doctor({**env, "WAGATE_PORT": "99999"})
    assert code == 1
    assert checks == {
        "settings": [
            "FAIL WAGATE_PORT: Input should be less than or equal to 65535; fix those environment variables (or .env)"
        ]
    }

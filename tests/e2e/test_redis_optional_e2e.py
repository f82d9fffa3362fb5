"""Redis is an optional extra: without ``WAGATE_REDIS_URL`` nothing imports its client, and with it set but the
client missing, ``wagate serve``, ``wagate worker`` and ``wagate doctor`` say so in one line.

The client is made missing for the child process alone: a ``redis`` package earlier on its path fails to import,
as a missing one does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import loopback
from tests.support.builders import ADMIN_KEY, TEST_KEK
from tests.support.procs import clean_env, free_port, serve
from tests.support.services import REDIS_URL, require_redis

pytestmark = pytest.mark.e2e

MISSING = "wagate: WAGATE_REDIS_URL is set but the Redis client is not installed: pip install 'wagate[redis]'"


@pytest.fixture
def without_redis(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import redis`` fails."""
    shadow = tmp_path / "shadow" / "redis"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'redis'\")\n")
    return clean_env(
        PYTHONPATH=str(shadow.parent),
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_KEYS=TEST_KEK,
        WAGATE_ADMIN_KEY=ADMIN_KEY,
    )


def wagate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wagate", *args], env=env, capture_output=True, text=True, timeout=60)


def test_without_a_redis_url_nothing_needs_the_client(without_redis: dict[str, str], tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import redis"], env=without_redis, capture_output=True, text=True, timeout=30
    )
    assert "No module named 'redis'" in probe.stderr  # the client is missing indeed
    served = serve(tmp_path, without_redis)
    try:
        served.wait_healthy()
        status = loopback.get(served.base_url + "/api/server/status", headers={"X-Api-Key": ADMIN_KEY}, timeout=10)
        assert status.status_code == 200, status.text
        assert status.json()["redis"] == {"configured": False}
        assert served.terminate() == 0
    finally:
        served.kill()
    doctor = wagate(without_redis, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert not any(line.split()[1] == "redis" for line in doctor.stdout.splitlines())


@pytest.mark.parametrize("command", [("serve",), ("worker",)])
def test_a_redis_url_without_the_client_stops_the_start_in_one_line(
    without_redis: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = {**without_redis, "WAGATE_REDIS_URL": REDIS_URL}
    result = wagate(env, *command, "--port", str(free_port()))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.strip() == MISSING
    assert not (tmp_path / "data").exists()  # nothing was started


@pytest.mark.services
def test_doctor_names_the_missing_client_and_checks_a_configured_redis(without_redis: dict[str, str]) -> None:
    missing = wagate({**without_redis, "WAGATE_REDIS_URL": REDIS_URL}, "doctor")
    assert missing.returncode == 1
    assert (
        "FAIL  redis      WAGATE_REDIS_URL is set but the Redis client is not installed; pip install 'wagate[redis]',"
        " or unset WAGATE_REDIS_URL"
    ) in missing.stdout.splitlines()

    require_redis()
    installed = {k: v for k, v in without_redis.items() if k != "PYTHONPATH"}
    answered = wagate({**installed, "WAGATE_REDIS_URL": REDIS_URL}, "doctor")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert any(line.startswith("ok    redis      answers in ") for line in answered.stdout.splitlines())

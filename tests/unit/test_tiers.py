"""The check of the test tiers (tests.support.tiers), run on small test files in a pytest of their own: a test that
starts a process without the ``e2e`` marker fails, as does one that reaches PostgreSQL or Redis without ``services``;
a test that asks for a PostgreSQL schema is marked ``services`` by that alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # each case is a pytest run of its own

REPO = Path(__file__).resolve().parents[2]
INI = """[pytest]
markers =
    e2e: starts real processes
    services: needs PostgreSQL or Redis
"""
MISSING_E2E = "but is not marked e2e"
MISSING_SERVICES = "but is not marked services"


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something listens on, standing in for PostgreSQL: the check looks at addresses, not protocols."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def run(tmp_path: Path, source: str, *args: str, pg_port: int = 9) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_case.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAGATE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(REPO)
    # The check alone, without the installed plugins (schemathesis', hypothesis'...): their import was nine tenths
    # of each run's CPU, and no case here uses them.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["WAGATE_TEST_PG"] = f"postgresql://postgres@127.0.0.1:{pg_port}/test"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.tiers", "-p", "no:cacheprovider", "-q", "-rN", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_process_started_without_the_e2e_marker_fails_the_test(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        """
import subprocess, sys
import pytest

def test_unmarked():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

@pytest.mark.e2e
def test_marked():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

@pytest.fixture
def child():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_unmarked_through_a_fixture(child):
    pass

def test_without_processes():
    pass
""",
    )
    out = done.stdout
    assert done.returncode == 1, out
    assert "2 failed, 2 passed" in out, out
    assert f"test_case.py::test_unmarked starts a process (subprocess.Popen: {sys.executable} -c pass), " in out
    assert f"test_case.py::test_unmarked_through_a_fixture starts a process (subprocess.Popen: {sys.executable}" in out
    assert "test_marked starts" not in out
    assert out.count(MISSING_E2E) == 2


def test_a_fork_counts_as_a_process(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        """
import os

def test_forks():
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
""",
    )
    assert done.returncode == 1, done.stdout
    assert "test_case.py::test_forks starts a process (os.fork: fork), but is not marked e2e" in done.stdout


def test_a_connection_to_postgresql_without_the_services_marker_fails_the_test(tmp_path: Path, listener: int) -> None:
    source = """
import socket
import pytest

def connect():
    with socket.create_connection(("127.0.0.1", {port})):
        pass

def test_unmarked():
    connect()

@pytest.mark.services
def test_marked():
    connect()
""".replace("{port}", str(listener))
    done = run(tmp_path, source, pg_port=listener)
    out = done.stdout
    assert done.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert f"test_case.py::test_unmarked connects to PostgreSQL at 127.0.0.1:{listener}, {MISSING_SERVICES}" in out


def test_a_failing_test_keeps_its_own_failure_and_gets_the_tiers_problem_beside_it(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        """
import subprocess, sys

def test_fails():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert 1 == 2, "its own failure"
""",
    )
    assert done.returncode == 1, done.stdout
    assert "its own failure" in done.stdout
    assert MISSING_E2E in done.stdout


def test_asking_for_a_postgresql_schema_is_marked_services(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.support.fixtures import pg_schema\n\n__all__ = ['pg_schema']\n")
    source = """
def test_on_postgresql(pg_schema):
    pass

def test_without():
    pass
"""
    done = run(tmp_path, source, "--collect-only", "-m", "not services")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1/2 tests collected (1 deselected)" in done.stdout, done.stdout
    assert "test_without" in done.stdout
    assert "test_on_postgresql" not in done.stdout

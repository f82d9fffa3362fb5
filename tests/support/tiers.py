"""The test tiers, checked while the tests run.

A test that starts a process (itself, in a fixture, or through the code under test: the webhook sender, an engine
host) is marked ``e2e``; a test that needs PostgreSQL or Redis is marked ``services``. ``make test-fast`` deselects
both, so a test that is missing its marker would make the fast tier slow or dependent on services without anyone
noticing. An audit hook (:pep:`578`) sees every process this interpreter starts and every connection it opens; a
test that does either without its marker fails, with what it did and what to add. A server in a thread (uvicorn,
aiohttp, aiosmtpd) is no process and needs no marker.

A test that uses the ``pg_schema`` fixture needs PostgreSQL by declaration: it is marked ``services`` here, at
collection, as the PostgreSQL parameter of ``backend`` is by its own mark.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import pytest

E2E = "e2e"
SERVICES = "services"
# Every way CPython starts a process raises one of these audit events (asyncio's subprocesses and os.popen go
# through subprocess.Popen).
_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system"}
)


def _addresses(url: str, default_port: int) -> dict[tuple[str, int], str]:
    """The (address, port) pairs a service's URL resolves to, each naming the service."""
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or default_port
    name = f"{'PostgreSQL' if parts.scheme.startswith('postgres') else 'Redis'} at {host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return {}
    return {(str(info[4][0]), port): name for info in infos}


class _Running:
    """The test running now in this process, the markers it has, and what it did that they do not allow."""

    def __init__(self) -> None:
        self.item: pytest.Item | None = None
        self.marks: frozenset[str] = frozenset()
        self.problems: list[str] = []
        self.services: dict[tuple[str, int], str] = {}

    def begin(self, item: pytest.Item) -> None:
        self.item, self.problems = item, []
        self.marks = frozenset(mark.name for mark in item.iter_markers())

    def end(self) -> None:
        self.item = None

    def needs(self, marker: str, what: str) -> None:
        """Record that the running test did ``what``, which only a test marked ``marker`` may do."""
        if self.item is None or marker in self.marks:
            return
        problem = f"{what}, but is not marked {marker}: add `pytestmark = pytest.mark.{marker}` (or mark the test)"
        if problem not in self.problems:
            self.problems.append(problem)

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if self.item is None:
            return
        if event in _PROCESS_EVENTS:
            self.needs(E2E, f"starts a process ({event}: {_program(event, args)})")
        elif event == "socket.connect" and isinstance(args[1], tuple):
            service = self.services.get((str(args[1][0]), int(args[1][1])))
            if service is not None:
                self.needs(SERVICES, f"connects to {service}")


def _program(event: str, args: tuple[Any, ...]) -> str:
    if event == "subprocess.Popen":
        command = args[1]
        return " ".join(map(str, command)) if isinstance(command, list | tuple) else str(command)
    return str(args[0]) if args else "fork"


running = _Running()


def needs(marker: str, what: str) -> None:
    """For helpers that hand a service to a process this hook cannot see (a gateway given a database URL)."""
    running.needs(marker, what)


def pytest_configure(config: pytest.Config) -> None:
    from tests.support.services import PG_DSN, REDIS_URL  # which itself calls needs(): imported once both exist

    running.services = {**_addresses(PG_DSN, 5432), **_addresses(REDIS_URL, 6379)}
    if not getattr(sys, "_wagate_tiers_audit", False):  # an audit hook cannot be removed: add it once
        sys.addaudithook(running.audit)
        sys._wagate_tiers_audit = True  # type: ignore[attr-defined]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "pg_schema" in getattr(item, "fixturenames", ()):
            item.add_marker(SERVICES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    running.begin(item)
    try:
        return (yield)
    finally:
        running.end()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    assert isinstance(report, pytest.TestReport)
    # Reported with the call when there is one (a test skipped in set-up has none: then with the teardown).
    if running.problems and (call.when == "call" or (call.when == "teardown" and not _reported(item))):
        problems = "\n".join(f"{item.nodeid} {problem}" for problem in running.problems)
        if report.failed:
            report.sections.append(("test tiers", problems))
        else:
            report.outcome, report.longrepr = "failed", problems
        item.stash[_REPORTED] = True
    return report


_REPORTED = pytest.StashKey[bool]()


def _reported(item: pytest.Item) -> bool:
    return item.stash.get(_REPORTED, False)

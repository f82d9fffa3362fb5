"""Helpers to run ``wagate`` as real processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from tests.support import loopback, zygote
from tests.support.tiers import E2E, needs

# How long a process may take to answer after its start: a second or two on an idle machine, and far more when the
# whole suite runs in parallel beside other work. A bound on starting, not a measure of it.
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**values: str) -> dict[str, str]:
    """The environment without any WAGATE_ setting of the developer's shell, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
    env.update(values)
    return env


class Process(Protocol):
    """What the tests use of a started process: a :class:`subprocess.Popen` or a :class:`zygote.Forked`."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


def start_wagate(args: list[str], env: dict[str, str], stdin: int, stdout: int, stderr: int) -> Process:
    """``python -m wagate *args``: forked from the zygote (tests.support.zygote), or started afresh where the
    environment changes how the interpreter itself starts."""
    needs(E2E, f"starts a process (wagate {' '.join(args[:2])})")  # a fork of the zygote is no audit event here
    forked = zygote.spawn(args, env, stdin, stdout, stderr)
    if forked is not None:
        return forked
    return subprocess.Popen([sys.executable, "-m", "wagate", *args], env=env, stdin=stdin, stdout=stdout, stderr=stderr)


def run_wagate(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m wagate *args`` to its end, as ``subprocess.run(..., capture_output=True, text=True)`` gives it."""
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin.write((input or "").encode())
        stdin.seek(0)
        proc = start_wagate(list(args), env, stdin.fileno(), out.fileno(), err.fileno())
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            [sys.executable, "-m", "wagate", *args], code, out.read().decode(), err.read().decode()
        )


@dataclass
class Served:
    proc: Process
    base_url: str
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until ``/ready`` answers 200; a process that exits or does not answer in time is killed (not left to
        warn, collected in some later test) and fails the test with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wagate exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if loopback.get(self.base_url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"wagate did not become ready in {timeout}s:\n{self.log()}")

    def terminate(self, timeout: float = 10) -> int:
        """SIGTERM, and the exit code (fails the test if it takes longer than ``timeout``)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"wagate did not exit within {timeout}s of SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def serve(tmp: Path, env: dict[str, str], *args: str, port: int | None = None, name: str = "serve") -> Served:
    port = port or free_port()
    log_path = tmp / f"{name}-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log_file:
        proc = start_wagate(
            ["serve", "--host", "127.0.0.1", "--port", str(port), *args], env, 0, log_file.fileno(), log_file.fileno()
        )
    return Served(proc, f"http://127.0.0.1:{port}", log_path)


def sim_server(tmp: Path, *args: str, port: int | None = None) -> Served:
    """``wagate sim-server`` as a process, its state in ``tmp``."""
    port = port or free_port()
    log_path = tmp / f"sim-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log_file:
        proc = start_wagate(
            ["sim-server", "--port", str(port), "--state", str(tmp / "sim-state.json"), *args],
            clean_env(),
            0,
            log_file.fileno(),
            log_file.fileno(),
        )
    served = Served(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sim-server exited with {proc.returncode}:\n{served.log()}")
        try:
            if loopback.get(served.base_url + "/health", timeout=1).status_code == 200:
                return served
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    served.kill()
    raise AssertionError(f"sim-server did not start in {STARTUP_TIMEOUT}s:\n{served.log()}")

"""Helpers to run ``wagate`` as real processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

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


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
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
                if httpx.get(self.base_url + "/ready", timeout=1).status_code == 200:
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
        proc = subprocess.Popen(
            [sys.executable, "-m", "wagate", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Served(proc, f"http://127.0.0.1:{port}", log_path)


def sim_server(tmp: Path, *args: str, port: int | None = None) -> Served:
    """``wagate sim-server`` as a process, its state in ``tmp``."""
    port = port or free_port()
    log_path = tmp / f"sim-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wagate",
                "sim-server",
                "--port",
                str(port),
                "--state",
                str(tmp / "sim-state.json"),
                *args,
            ],
            env=clean_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    served = Served(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sim-server exited with {proc.returncode}:\n{served.log()}")
        try:
            if httpx.get(served.base_url + "/health", timeout=1).status_code == 200:
                return served
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    served.kill()
    raise AssertionError(f"sim-server did not start in {STARTUP_TIMEOUT}s:\n{served.log()}")

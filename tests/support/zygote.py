"""Warm starts for the ``wagate`` processes the tests run.

A ``wagate serve`` spends about 1.2 s of CPU importing FastAPI, SQLAlchemy, aiohttp, pydantic and its own routes
before it answers, and the suite starts a few hundred ``wagate`` processes. A zygote, one per test process, imports
all of that once and then forks: each child sets the environment, working directory, standard streams and
``sys.argv`` of the command asked for and runs ``python -m wagate`` in itself (``runpy``, as ``-m`` does), exiting
as that interpreter would. The child is a real, separate process: it listens on its own port, is signalled and
killed for real, and its exit code is the one a started interpreter would give.

What a fork cannot give is a fresh interpreter: an environment that changes how Python itself starts (a
``PYTHON*`` variable other than the zygote's, such as a ``PYTHONPATH`` that hides a package) is started the usual
way, and so are the tests of start-up itself, which call ``subprocess`` directly. The zygote imports nothing that
starts a thread (neonize's Go runtime would), so forking it is safe.

The zygote speaks over a ``SOCK_SEQPACKET`` socket pair: ``spawn`` (with the child's three standard streams passed
as file descriptors) answers the child's pid, ``poll`` answers its exit code once it has ended (the zygote is its
parent, so only it can reap it). Signals go to the pid directly.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Forked", "spawn", "stop"]

# What ``wagate serve`` and ``wagate sim-server`` import before they answer (from ``python -X importtime``), bar
# neonize, which only a process that runs it needs.
PRELOAD = (
    "wagate.cli",
    "wagate.cli.serve",
    "wagate.runtime.server",
    "wagate.runtime.node",
    "wagate.api.app",
    "wagate.crypto.keyring",
    "wagate.logs",
    "wagate.engines.sim.engine",
    "wagate.engines.sim.host",
    "wagate.engines.sim.server",
    "wagate.store.sql",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "asyncpg",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.websockets_impl",
)
_MAX_MESSAGE = 1 << 20
_ROOT = Path(__file__).resolve().parents[2]


class Forked:
    """A child of the zygote, with the part of :class:`subprocess.Popen`'s interface the tests use."""

    def __init__(self, zygote: _Zygote, pid: int, args: list[str]) -> None:
        self._zygote = zygote
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.poll(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.005)
        return code

    def send_signal(self, sig: int) -> None:
        # The child stays a zombie of the zygote until polled, so its pid cannot have been given to another.
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)


class _Zygote:
    """The client side: the zygote process and the socket to it (one request at a time)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zygote", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the children's own streams are passed with each request
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.asked = 0
        ready = json.loads(self.sock.recv(_MAX_MESSAGE) or b"null")
        if ready != {"ready": True}:
            raise RuntimeError(f"the zygote did not start ({ready!r}, exit code {self.proc.poll()})")

    def fits(self, env: dict[str, str]) -> bool:
        """Whether a child with ``env`` would start as a fresh interpreter started with it would."""
        ours = {k: v for k, v in self.env.items() if k.startswith("PYTHON")}
        return ours == {k: v for k, v in env.items() if k.startswith("PYTHON")}

    def ask(self, request: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        with self.lock:
            # Numbered: the answer to a request whose wait a test's timeout broke is left in the socket, and skipped.
            self.asked += 1
            socket.send_fds(self.sock, [json.dumps({**request, "n": self.asked}).encode()], fds or [])
            answer: dict[str, Any] = json.loads(self.sock.recv(_MAX_MESSAGE))
            while answer["n"] != self.asked:
                answer = json.loads(self.sock.recv(_MAX_MESSAGE))
        if "error" in answer:
            raise RuntimeError(f"the zygote refused {request.get('op')}: {answer['error']}")
        return answer

    def poll(self, pid: int) -> int | None:
        code: int | None = self.ask({"op": "poll", "pid": pid})["code"]
        return code

    def close(self) -> None:
        self.sock.close()  # the zygote ends at the end of its socket
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_zygote: list[_Zygote] = []


def spawn(
    args: list[str], env: dict[str, str], stdin: int, stdout: int, stderr: int, cwd: Path | None = None
) -> Forked | None:
    """``python -m wagate *args`` forked from the zygote (started at the first call), or None when ``env`` needs a
    fresh interpreter (the caller then starts one)."""
    if not _zygote:
        _zygote.append(_Zygote())
        atexit.register(stop)
    zygote = _zygote[0]
    if not zygote.fits(env):
        return None
    request = {"op": "spawn", "args": args, "env": env, "cwd": str(cwd) if cwd else None}
    pid: int = zygote.ask(request, [stdin, stdout, stderr])["pid"]
    return Forked(zygote, pid, [sys.executable, "-m", "wagate", *args])


def stop() -> None:
    """End the zygote (its children are the tests' to end)."""
    while _zygote:
        _zygote.pop().close()


def _serve(sock: socket.socket) -> dict[str, Any] | None:
    """Answer requests until the socket ends (None); in a forked child, the request it is to run."""
    while True:
        data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 3)
        if not data:
            return None
        request = json.loads(data)
        answer: dict[str, Any] = {"n": request["n"]}
        if request["op"] == "poll":
            pid, status = os.waitpid(request["pid"], os.WNOHANG)
            answer["code"] = os.waitstatus_to_exitcode(status) if pid else None
        elif request["op"] == "spawn":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                sock.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                return dict(request)
            for fd in fds:
                os.close(fd)
            answer["pid"] = pid
        else:
            answer["error"] = f"unknown op {request['op']!r}"
        sock.send(json.dumps(answer).encode())


def _run(request: dict[str, Any]) -> None:
    """In the child: become ``python -m wagate *args`` with the request's environment and working directory."""
    if request["cwd"]:
        os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as ``-m`` puts it
    sys.argv = ["-m", *request["args"]]
    runpy.run_module("wagate", run_name="__main__", alter_sys=True)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
        sock.send(json.dumps({"ready": False, "why": "a preloaded module started a thread"}).encode())
        return
    sock.send(json.dumps({"ready": True}).encode())
    request = _serve(sock)
    if request is not None:
        _run(request)


if __name__ == "__main__":
    main()

"""From a fresh clone to the first answer of ``/health``: ``make run`` creating its virtualenv, installing, starting.

Each run clones the repository into a new directory, starts ``make run`` there (on a free port, its data directory
inside the clone) and polls ``/health`` every 0.2 s; the time is from starting ``make`` to the first 200, and the
CPU time is that of everything ``make run`` ran (venv, pip, the gateway until it was stopped). Revisions
are measured in turns (A B A B ...) so that the network and the machine's load weigh on each alike; pip's cache is
whatever this machine's is, the same for every run.

    python bench/first_health.py --repo . --rev main~1 --rev main --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from harness import free_port

TIMEOUT = 600.0


def first_health(repo: str, rev: str) -> tuple[float, float]:
    """Seconds from ``make run`` in a fresh clone of ``rev`` to its first ``/health`` answer, and the CPU seconds
    (user and system) of everything ``make run`` ran, until it was stopped."""
    workdir = Path(tempfile.mkdtemp(prefix="wagate-clone-"))
    try:
        clone = workdir / "wagate"
        subprocess.run(["git", "clone", "-q", repo, str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", rev], check=True)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
        env.update(WAGATE_PORT=str(port), WAGATE_DATA_DIR=str(clone / "data"))
        log = (workdir / "make-run.log").open("wb")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        proc = subprocess.Popen(
            ["make", "-s", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wall = _wait_for_health(proc, port, started, workdir)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # make and the gateway: the group started above
            proc.wait(timeout=30)
            log.close()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return wall, cpu
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_health(proc: subprocess.Popen[bytes], port: int, started: float, workdir: Path) -> float:
    while time.monotonic() - started < TIMEOUT:
        if proc.poll() is not None:
            raise RuntimeError(f"make run exited with {proc.returncode}: see {workdir / 'make-run.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no /health within {TIMEOUT:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="repository to clone")
    parser.add_argument("--rev", action="append", required=True, help="revision to measure (repeat: measured in turns)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each revision")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {rev: [] for rev in args.rev}
    cpus: dict[str, list[float]] = {rev: [] for rev in args.rev}
    for round_ in range(args.runs):
        for rev in args.rev:
            wall, cpu = first_health(args.repo, rev)
            walls[rev].append(wall)
            cpus[rev].append(cpu)
            print(f"run {round_ + 1} {rev}: {wall:.1f} s to /health, {cpu:.1f} s CPU", flush=True)
    for name, figures in (("to /health", walls), ("CPU", cpus)):
        reference = statistics.median(figures[args.rev[0]])
        for rev, seen in figures.items():
            median = statistics.median(seen)
            print(
                f"{rev} {name}: median {median:.1f} s (min {min(seen):.1f}, max {max(seen):.1f}),"
                f" {median / reference:.2f} of {args.rev[0]}"
            )


if __name__ == "__main__":
    main()

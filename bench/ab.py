"""Two versions of the gateway side by side on one benchmark: interleaved rounds, each figure's median and spread.

    python bench/ab.py --a main --b HEAD --rounds 3 -- \\
        python bench/webhooks.py --sessions 20 --rate 5000 --seconds 20 --warmup 5
    python bench/ab.py --a main --b HEAD --rounds 3 --copy /tmp/b10k -- \\
        python bench/restore.py --sessions 10000 --dir {copy}

``--a`` and ``--b`` name git revisions (or ``.``, the working tree as it is): each one's ``src/`` is exported once
into a temporary directory and put first on ``PYTHONPATH`` of the benchmark command, so every process the command
starts (the gateway, the sim-server, the webhook sender child) runs that version; the benchmark scripts and their
receiver are this tree's. Rounds alternate the order (A B, then B A, ...) so that a drift in the machine's speed
during the call weighs on both alike. ``--copy DIR`` copies ``DIR`` to a fresh directory before each run and puts
its path for ``{copy}`` in the command (a linked restore directory grows with every start: each run gets the same).

Every run's JSON line is printed as it ends (with its variant, revision and round); then, per numeric figure, each
variant's median with its min and max, and the median of the per-round ratios B/A (a pair shares its minutes of the
machine, so its ratio is steadier than either figure). Absolute figures on a shared machine are noise; compare the
variants of one call only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def resolve(revision: str) -> str:
    if revision == ".":
        return "working tree"
    out = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, check=True)
    return out.stdout.decode().strip()


def export(revision: str, into: Path) -> Path:
    """``src/`` of ``revision`` (or of the working tree, for ``.``) under ``into``; returns the ``src`` path."""
    if revision == ".":
        shutil.copytree(ROOT / "src", into / "src", ignore=shutil.ignore_patterns("__pycache__"))
        return into / "src"
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", "--format=tar", revision, "src"], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return into / "src"


@contextmanager
def copied(source: Path | None) -> Iterator[Path | None]:
    if source is None:
        yield None
        return
    parent = Path(tempfile.mkdtemp(prefix="wagate-ab-copy-"))
    try:
        target = parent / source.name
        shutil.copytree(source, target, symlinks=True)
        yield target
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def run_once(command: list[str], src: Path, copy: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH", "")]))
    args = [part.replace("{copy}", str(copy)) if copy is not None else part for part in command]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        return {"failed": done.returncode}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per numeric figure: each variant's median, min and max, and the median and range of the rounds' B/A."""
    fields = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    fields = [f for f in fields if f != "round"]
    out: dict[str, dict[str, Any]] = {}
    for field in fields:
        row: dict[str, Any] = {}
        for variant in ("A", "B"):
            values = [r[field] for r in runs if r["variant"] == variant and isinstance(r.get(field), int | float)]
            if values:
                row[variant] = [statistics.median(values), min(values), max(values)]
        ratios = []
        for number in {r["round"] for r in runs}:
            pair = {r["variant"]: r.get(field) for r in runs if r["round"] == number}
            a, b = pair.get("A"), pair.get("B")
            if isinstance(a, int | float) and isinstance(b, int | float) and a:
                ratios.append(b / a)
        if ratios:
            row["B/A"] = [round(statistics.median(ratios), 3), round(min(ratios), 3), round(max(ratios), 3)]
        out[field] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="git revision of variant A, or . for the working tree")
    parser.add_argument("--b", required=True, help="git revision of variant B, or . for the working tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copy", type=Path, help="a directory copied afresh for each run, named {copy} in the command")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no benchmark command after --")
    revisions = {"A": args.a, "B": args.b}
    names = {variant: resolve(revision) for variant, revision in revisions.items()}
    with tempfile.TemporaryDirectory(prefix="wagate-ab-") as tmp:
        trees = {v: export(rev, Path(tmp) / v) for v, rev in revisions.items()}
        runs: list[dict[str, Any]] = []
        for number in range(args.rounds):
            for variant in ("A", "B") if number % 2 == 0 else ("B", "A"):
                with copied(args.copy) as copy:
                    result = run_once(command, trees[variant], copy)
                result = {"variant": variant, "revision": names[variant], "round": number + 1, **result}
                runs.append(result)
                print(json.dumps(result), flush=True)
    ok = [r for r in runs if "failed" not in r]
    if ok:
        print(json.dumps({"command": " ".join(command), "revisions": names}))
        for field, row in summary(ok).items():  # [median, min, max] of each variant, and of the rounds' B/A
            print(json.dumps({"figure": field, **row}))


if __name__ == "__main__":
    main()

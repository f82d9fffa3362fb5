"""The two set-up commands: `make run` installs what running needs, `make test` the development extra on top (and
WAHA's SDKs, each in a directory of its own, for the compatibility suite)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # make runs as a process, if only a dry run

REPO = Path(__file__).resolve().parents[2]


def planned(venv: Path, target: str) -> list[str]:
    """The commands ``make`` would run for ``target`` with its virtualenv at ``venv`` (a dry run)."""
    out = subprocess.run(
        ["make", "-n", "-s", target, f"VENV={venv}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()


def sdks(venv: Path) -> list[str]:
    """The installs of WAHA's SDKs that ``make pytest`` runs first."""
    return [f"--target {venv}/sdk/waha-py waha-py==2026.7.2", f"--target {venv}/sdk/waha waha==1.0.5"]


def installs(commands: list[str]) -> list[str]:
    return [c.split("pip install -q ", 1)[1] for c in commands if "pip install -q " in c and "--upgrade pip" not in c]


def stamp(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    later = time.time() + 60  # newer than pyproject.toml, whenever it was checked out
    os.utime(path, (later, later))


def test_make_run_installs_no_development_extra(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert installs(planned(venv, "run")) == ["-e ."]
    assert installs(planned(venv, "pytest")) == ["-e '.[dev]'", *sdks(venv)]


def test_each_install_is_done_once_whichever_command_comes_first(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    stamp(venv / "bin" / "python")
    assert f"touch {venv}/.installed {venv}/.installed-run" in planned(venv, "pytest")  # the extra holds it all
    stamp(venv / ".installed")
    stamp(venv / ".installed-run")  # after `make test`
    stamp(venv / "sdk" / ".installed")
    assert installs(planned(venv, "run")) == []
    assert installs(planned(venv, "pytest")) == []
    (venv / ".installed").unlink()  # after `make run` alone
    assert installs(planned(venv, "run")) == []
    assert installs(planned(venv, "pytest")) == ["-e '.[dev]'"]  # the tests need the extra
    (venv / "sdk" / ".installed").unlink()
    assert installs(planned(venv, "run")) == []
    assert installs(planned(venv, "pytest")) == ["-e '.[dev]'", *sdks(venv)]

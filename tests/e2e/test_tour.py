"""The README's tour, run as its reader runs it: its shell commands, taken from README.md itself, against a gateway
started as the tour starts it, with the admin key copied from the console."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import loopback
from tests.support.procs import Served, clean_env, serve
from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR = "## A five-minute tour"
MARK = "~~~ wagate tour step "


def tour_commands() -> list[str]:
    """The ```sh blocks of the tour's section, in order."""
    text = README.read_text()
    start = text.index(TOUR + "\n")
    end = text.find("\n## ", start + len(TOUR))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Step:
    command: str  # one shell command, its continuation lines joined
    shown: str | None  # the answer the tour shows under it (``...`` standing for anything), if any


def tour_steps(blocks: list[str]) -> list[Step]:
    """Each command of the blocks, with the answer shown on the comment line that follows it (``# {...}``)."""
    steps: list[Step] = []
    for block in blocks:
        lines = iter(block.splitlines())
        for line in lines:
            if line.startswith("# "):
                assert steps, f"a comment that follows no command: {line}"
                assert steps[-1].shown is None, f"two answers shown for one command: {line}"
                if line.startswith(("# {", "# [")):
                    steps[-1] = Step(steps[-1].command, line[2:])
                continue
            command = line
            while command.endswith("\\"):
                command += "\n" + next(lines)  # the shell joins them
            steps.append(Step(command, None))
    return steps


def as_pattern(shown: str) -> re.Pattern[str]:
    """The answer as the tour shows it, ``...`` matching anything; the prose after the JSON is not part of it."""
    json_part = shown[: max(shown.rfind("}"), shown.rfind("]")) + 1]
    return re.compile(".*?".join(re.escape(part) for part in json_part.split("...")), re.DOTALL)


def test_the_readme_tour_works_as_written(tmp_path: Path) -> None:
    start, *blocks = tour_commands()
    assert start.strip() == "make run ARGS=--demo"
    assert "$(BIN)/wagate serve $(ARGS)" in (README.parent / "Makefile").read_text()  # as started below
    steps = tour_steps(blocks)
    assert len([step for step in steps if step.shown]) >= 4
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "data"))  # development mode, as in a fresh checkout
    started: list[Served] = []
    try:
        gateway = serve(tmp_path, env, "--demo")
        started.append(gateway)
        gateway.wait_healthy()
        found = re.findall(r"^ {4}X-Api-Key: (wag_\S+)$", gateway.log(), re.MULTILINE)
        assert len(found) == 1, gateway.log()
        outputs, key = run_as_the_reader(steps, gateway, found[0], tmp_path)
        for step, output in zip(steps, outputs, strict=True):
            if step.shown is not None:
                assert as_pattern(step.shown).fullmatch(output), f"{step.command}\nanswered {output}"

        def replied() -> bool:
            sent = loopback.get(
                gateway.base_url + "/sim/devices/+15550001/sent", headers={"X-Api-Key": key}, timeout=10
            ).json()
            return any(message.get("text") == "hi back" for message in sent)

        wait_for(replied, 15, "the reply to reach the simulated WhatsApp")  # "queued, then sent"
        assert gateway.terminate() == 0

        # "Stop the gateway ... and start it again: the session comes back to WORKING by itself, with no new scan."
        again = serve(tmp_path, env, "--demo", port=int(gateway.base_url.rsplit(":", 1)[1]))
        started.append(again)
        again.wait_healthy()
        with loopback.client(base_url=again.base_url, timeout=10, headers={"X-Api-Key": key}) as http:
            wait_for(lambda: http.get("/api/sessions/sales").json()["status"] == "WORKING", 15, "sales WORKING again")
        assert again.terminate() == 0
    finally:
        for served in started:
            served.kill()


def run_as_the_reader(steps: list[Step], gateway: Served, admin_key: str, cwd: Path) -> tuple[list[str], str]:
    """Run the steps in one shell, as pasted: the gateway's port for 8080, the console's admin key where the tour
    says to paste it. Each step's output, and the tenant key the shell ended with."""
    script = ["set -euo pipefail"]
    pasted = 0
    for number, step in enumerate(steps):
        command = step.command.replace("localhost:8080", "localhost:" + gateway.base_url.rsplit(":", 1)[1])
        if command.startswith("ADMIN=wag_..."):
            command = command.replace("ADMIN=wag_...", f"ADMIN={admin_key}", 1)
            pasted += 1
        script += [command, f"printf '\\n{MARK}{number}\\n'"]
    assert pasted == 1, "the tour says where to paste the admin key: ADMIN=wag_..."
    script.append('printf "%s" "$KEY"')
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{gateway.log()}"
    *outputs, key = re.split(rf"\n{MARK}\d+\n", done.stdout)
    return [output.strip() for output in outputs], key

"""WAHA's published Python SDKs drive a whole session on wagate: create with ``config.webhooks``, start, QR, scan,
``me``, every send, an inbound message as a webhook, the lists, restart, stop, logout and delete, each answer read
through the SDK's own models (tests/compat/sdk_flows).

WAHA's SDKs all import as ``waha``: each is installed in a directory of its own (``make`` puts them under the venv's
``sdk/``) and its flow runs in a process whose ``PYTHONPATH`` starts there, beside a real gateway and simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.compat.sdk_flows.common import Flow
from tests.support.probes import HOOKS
from tests.support.procs import clean_env
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = Path(sys.prefix) / "sdk"
# The SDKs as the Makefile installs them, by the directory each goes in: (distribution, version, flow module).
SDKS = {
    "waha-py": ("waha-py", "2026.7.2", "tests.compat.sdk_flows.waha_py_flow"),
    "waha": ("waha", "1.0.5", "tests.compat.sdk_flows.waha_flow"),
}
COMMON = [
    "create the session with config.webhooks",
    "start",
    "read the QR code",
    "scan it with the phone",
    "me",
    "a session.status webhook",
    "sendText",
    "sendImage",
    "sendFile",
    "sendVoice",
    "sendVideo",
    "sendLocation",
    "sendContactVcard",
]
INBOUND = ["an inbound message, as a webhook", "list the sessions"]
ENDING = ["list a chat's messages", "restart", "stop", "logout", "delete"]
# The `waha` SDK's sendPoll sends a shape of its own (`poll` as the question, `options` beside it) that WAHA's
# document does not take either: its flow leaves it out.
STEPS = {"waha-py": [*COMMON, "sendPoll", *INBOUND, "list the chats", *ENDING], "waha": [*COMMON, *INBOUND, *ENDING]}
FLOW_TIMEOUT = 150.0


def installed(name: str) -> Path:
    """The SDK's directory, checked to hold the version this suite pins."""
    distribution, version, _ = SDKS[name]
    target = SDK_DIR / name
    found = [d.version for d in metadata.distributions(path=[str(target)]) if d.metadata["Name"] == distribution]
    assert found == [version], f"{distribution}=={version} is not in {target} (found {found}): run `make pytest`"
    return target


def run_flow(name: str, flow: Flow) -> list[dict[str, Any]]:
    """The flow's steps as it reported them; its output and error stream in the failure when it did not finish."""
    target = installed(name)
    env = clean_env(PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-m", SDKS[name][2], json.dumps(asdict(flow))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=FLOW_TIMEOUT,
        check=False,
    )
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = [s for s in steps if not s["ok"]]
    if done.returncode != 0 or failed:
        passed = [s["step"] for s in steps if s["ok"]]
        detail = failed[0]["trace"] if failed else done.stderr
        raise AssertionError(f"{name}: after {passed}, exit {done.returncode}:\n{detail}\n{done.stderr[-3000:]}")
    return steps


@pytest.mark.timeout(FLOW_TIMEOUT + 60)
@pytest.mark.parametrize("name", sorted(SDKS))
def test_a_waha_sdk_drives_a_whole_session(name: str, stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(**HOOKS)  # the flow's webhook handler listens on loopback
    stack.start()
    stack.tenant()
    assert stack.gateway is not None
    flow = Flow(
        base_url=stack.gateway.base_url,
        api_key=stack.key["X-Api-Key"],
        sim_url=stack.sim.base_url,
        session="default",
        phone="+15550001",
        peer="+15550100",
    )
    steps = run_flow(name, flow)
    assert [s["step"] for s in steps] == STEPS[name]

"""``wagate sessions`` as a real command beside a running gateway on the same database: what it records, the
gateway's supervisor does, and what it lists is what the API shows."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.procs import run_wagate
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

PHONE = "+15550801"


def wagate(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_wagate(*args, env=stack.env, input=stdin)


def listed(stack: Stack, *extra: str) -> dict[str, list[str]]:
    """``wagate sessions list``: each session's fields by name."""
    result = wagate(stack, "sessions", "list", "--tenant", "t", *extra)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split("\t") == ["name", "status", "reason", "desired", "engine"]
    return {row.split("\t")[0]: row.split("\t")[1:] for row in rows}


def test_sessions_driven_from_the_command_line(stack: Stack) -> None:
    made = wagate(stack, "sessions", "create", "--tenant", "t", "main", "--config", '{"send_rate": 30}')
    assert made.returncode == 0, made.stderr
    assert made.stdout.split("\t")[0] == "main"
    assert made.stdout.rstrip().split("\t")[3:] == ["running", "sim"]
    stack.wait_status("main", "SCAN_QR_CODE")  # the gateway's supervisor found it at its reconcile
    assert listed(stack)["main"][0] == "SCAN_QR_CODE"
    stack.sim_post("/phone/scan", {"phone": PHONE, "qr": stack.raw_qr("main")})
    stack.wait_status("main", "WORKING")
    assert listed(stack) == {"main": ["WORKING", "-", "running", "sim"]}
    assert stack.session("main")["config"]["send_rate"] == 30

    stopped = wagate(stack, "sessions", "stop", "--tenant", "t", "main")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.rstrip().split("\t")[3] == "stopped"
    stack.wait_status("main", "STOPPED")
    assert listed(stack) == {}  # a stopped session is listed only with --all, as the API's ?all=true
    assert listed(stack, "--all")["main"][:1] == ["STOPPED"]

    assert wagate(stack, "sessions", "start", "--tenant", "t", "main").returncode == 0
    stack.wait_status("main", "WORKING")  # linked before: no new scan
    assert wagate(stack, "sessions", "restart", "--tenant", "t", "main").returncode == 0
    history = stack.history("main")
    assert any(e["actor"] == "cli" and e["detail"].get("restart") for e in history)
    assert {("created", "cli"), ("desired", "cli")} <= {(e["kind"], e["actor"]) for e in history}
    stack.wait_status("main", "WORKING")

    # A logout needs the process that runs the session: the command says where to do it, and changes nothing.
    logout = wagate(stack, "sessions", "logout", "--tenant", "t", "main")
    assert logout.returncode == 2
    assert "POST /api/sessions/main/logout" in logout.stderr
    assert stack.session("main")["status"] == "WORKING"

    # Refusals: one line each, exit code 2.
    for args, words in (
        (("sessions", "start", "--tenant", "nobody", "main"), "no tenant 'nobody'"),
        (("sessions", "stop", "--tenant", "t", "other"), "no session named 'other'"),
        (("sessions", "create", "--tenant", "t", "main"), "already exists"),
        (("sessions", "create", "--tenant", "t", "bad name"), "invalid session name"),
        (("sessions", "create", "--tenant", "t", "x", "--config", '{"nope": 1}'), "invalid --config: nope"),
        (("sessions", "create", "--tenant", "t", "x", "--engine", "telegram"), "unknown engine 'telegram'"),
    ):
        refused = wagate(stack, *args)
        assert (refused.returncode, refused.stdout) == (2, ""), refused
        assert words in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

    kept = wagate(stack, "sessions", "delete", "--tenant", "t", "main", stdin="n\n")
    assert kept.returncode == 1  # not confirmed
    assert "main" in listed(stack)
    deleted = wagate(stack, "sessions", "delete", "--tenant", "t", "main", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    with stack.http as http:
        assert http.get("/api/sessions/main").status_code == 404
    assert listed(stack, "--all") == {}

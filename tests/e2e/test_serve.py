"""``wagate serve`` as a real process: state survives SIGTERM and a restart; start-up refusals are clear."""

from __future__ import annotations

import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, free_port, serve
from tests.support.services import PG_DSN, require_postgres
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

ADMIN = "e2e-admin-key-abcdefghijklmnop"


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.kill()


def test_state_survives_sigterm_and_restart(tmp_path: Path, servers: list[Served]) -> None:
    # No engine can connect (sim without a simulator): the sessions' state holds still between the two runs.
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        WAGATE_DEFAULT_ENGINE="sim",
    )
    first = serve(tmp_path, env)
    servers.append(first)
    first.wait_healthy()
    admin = {"X-Api-Key": ADMIN}
    with loopback.client(base_url=first.base_url, timeout=10) as http:
        tenants = {}
        for name in ("acme", "globex"):
            made = http.post("/api/tenants", json={"name": name}, headers=admin)
            assert made.status_code == 201
            tenants[name] = {"X-Api-Key": made.json()["api_key"]}
        extra = http.post("/api/keys", json={"name": "second", "isAdmin": True}, headers=tenants["acme"]).json()
        http.post("/api/sessions", json={"name": "sales", "config": {"metadata": {"a": "1"}}}, headers=tenants["acme"])
        http.post("/api/sessions", json={"name": "support", "start": False}, headers=tenants["acme"])
        http.post("/api/sessions", json={"name": "sales", "start": False}, headers=tenants["globex"])
        http.post("/api/sessions/support/start", headers=tenants["acme"])
        before = {
            name: http.get("/api/sessions", params={"all": "true"}, headers=key).json() for name, key in tenants.items()
        }
        history_before = http.get("/api/sessions/support/history", headers=tenants["acme"]).json()
        tenants_before = http.get("/api/tenants", headers=admin).json()
    assert first.terminate() == 0

    second = serve(tmp_path, env)
    servers.append(second)
    second.wait_healthy()
    with loopback.client(base_url=second.base_url, timeout=10) as http:
        assert http.get("/api/tenants", headers=admin).json() == tenants_before
        for name, key in tenants.items():
            assert http.get("/api/sessions", params={"all": "true"}, headers=key).json() == before[name]
        assert http.get("/api/sessions/support/history", headers=tenants["acme"]).json() == history_before
        assert http.get("/api/sessions", headers={"X-Api-Key": extra["key"]}).status_code == 200
    assert second.terminate() == 0


def test_development_admin_key_is_made_once(tmp_path: Path, servers: list[Served]) -> None:
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "data"))
    first = serve(tmp_path, env)
    servers.append(first)
    first.wait_healthy()
    found = re.findall(r"X-Api-Key: (wag_\S+)", first.log())
    assert len(found) == 1
    admin = {"X-Api-Key": found[0]}
    assert loopback.post(first.base_url + "/api/tenants", json={"name": "t"}, headers=admin).status_code == 201
    assert "development mode" in first.log()
    assert first.terminate() == 0

    second = serve(tmp_path, env)
    servers.append(second)
    second.wait_healthy()
    assert "X-Api-Key" not in second.log()  # not printed again, and still valid
    assert loopback.get(second.base_url + "/api/tenants", headers=admin).json()[0]["name"] == "t"
    assert second.terminate() == 0
    assert found[0] not in (tmp_path / "data" / "wagate.db").read_bytes().decode("latin-1")


def test_production_without_keys_refuses_to_start(tmp_path: Path) -> None:
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path), WAGATE_ENV="production")
    result = subprocess.run(
        [sys.executable, "-m", "wagate", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "wagate keys generate" in result.stderr
    assert "WAGATE_KEYS" in result.stderr


def refused(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``wagate serve`` that must not start: its exit, its output."""
    result = subprocess.run(
        [sys.executable, "-m", "wagate", "serve", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0, result.stderr
    return result


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--port", "99999"], "--port (WAGATE_PORT): Input should be less than or equal to 65535"),
        (["--log-level", "loud"], "--log-level (WAGATE_LOG_LEVEL): log level must be one of"),
    ],
)
def test_a_bad_option_is_refused_as_a_bad_environment_value_is(tmp_path: Path, option: list[str], message: str) -> None:
    result = refused("--data-dir", str(tmp_path), *option)
    assert result.returncode == 2
    assert result.stderr.startswith("wagate: invalid settings: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WAGATE_PORT": "80a"}, "WAGATE_PORT: Input should be a valid integer"),
        ({"WAGATE_LEASE_TTL": "-1"}, "WAGATE_LEASE_TTL: Input should be greater than 0"),
    ],
)
def test_a_bad_environment_value_is_named_by_its_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = refused("--data-dir", str(tmp_path), **env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"wagate: invalid settings: {message}")
    assert result.stderr.count("\n") == 1
    assert env[next(iter(env))] not in result.stderr  # the value is not echoed: it could be a secret


def test_production_refuses_an_admin_key_shorter_than_32_characters(tmp_path: Path, servers: list[Served]) -> None:
    short = "a-31-character-admin-key-123456"
    env = {"WAGATE_DATA_DIR": str(tmp_path / "data"), "WAGATE_ENV": "production", "WAGATE_KEYS": TEST_KEK}
    result = refused("--port", str(free_port()), **env, WAGATE_ADMIN_KEY=short)
    assert result.returncode == 2
    assert result.stderr.startswith("wagate: invalid settings: WAGATE_ADMIN_KEY: in production the admin key must")
    assert result.stderr.count("\n") == 1
    assert short not in result.stderr

    enough = short + "7"
    gateway = started(tmp_path, clean_env(**env, WAGATE_ADMIN_KEY=enough), servers)
    assert loopback.get(gateway.base_url + "/api/tenants", headers={"X-Api-Key": enough}).status_code == 200
    assert gateway.terminate() == 0


def test_serve_help_documents_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wagate", "serve", "--help"], capture_output=True, text=True, check=True, env=clean_env()
    ).stdout
    for option in ("--host", "--port", "--data-dir", "--database-url"):
        assert option in out
    assert "[env WAGATE_PORT, default 8080]" in out  # the environment variable beside its option
    (demo,) = [line for line in out.splitlines() if line.strip().startswith("--demo")]
    assert "<" not in demo  # a flag: it takes no value (not "--demo <bool>")


def test_make_run_serves_health(tmp_path: Path, servers: list[Served]) -> None:
    repo = Path(__file__).resolve().parents[2]
    port = free_port()
    env = clean_env(WAGATE_PORT=str(port), WAGATE_DATA_DIR=str(tmp_path / "data"))
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            ["make", "-s", "run"], cwd=repo, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    served = Served(proc, f"http://127.0.0.1:{port}", log_path)
    servers.append(served)
    try:
        served.wait_healthy(timeout=60)
        assert loopback.get(served.base_url + "/health").json()["status"] == "ok"
    finally:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def test_sigterm_with_live_sessions_exits_0_quickly_and_releases_leases(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    stack.start()
    stack.tenant()
    for index in range(3):
        stack.link(f"s{index}", f"+1555000{index}")
    assert stack.gateway is not None
    started = time.monotonic()
    assert stack.gateway.terminate(timeout=10) == 0
    assert time.monotonic() - started < 10
    for index in range(3):
        assert not stack.device(f"+1555000{index}")["connected"]
    assert "supervisor stopped (3 session(s) released)" in stack.gateway.log()
    stack.start()  # and they all come back without a scan
    for index in range(3):
        stack.wait_status(f"s{index}", "WORKING")


def started(tmp_path: Path, env: dict[str, str], servers: list[Served], *args: str) -> Served:
    """A `wagate serve` that answers, stopped at the end of the test."""
    server = serve(tmp_path, env, *args)
    servers.append(server)
    server.wait_healthy()
    return server


def tenant_key(http: httpx.Client) -> dict[str, str]:
    """The headers of a new tenant's first key."""
    made = http.post("/api/tenants", json={"name": "t"}, headers={"X-Api-Key": ADMIN})
    assert made.status_code == 201, made.text
    return {"X-Api-Key": made.json()["api_key"]}


def test_demo_mode_runs_the_whole_flow_in_one_process(tmp_path: Path, servers: list[Served]) -> None:
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "data"), WAGATE_ADMIN_KEY=ADMIN, WAGATE_KEYS=TEST_KEK)
    demo = started(tmp_path, env, servers, "--demo")
    with loopback.client(base_url=demo.base_url, timeout=10) as http:
        key = tenant_key(http)
        created = http.post("/api/sessions", json={"name": "demo"}, headers=key)
        assert created.json()["engine"] == "sim"
        wait_for(lambda: http.get("/api/sessions/demo", headers=key).json()["status"] == "SCAN_QR_CODE", 5, "a QR")
        qr = http.get("/api/demo/auth/qr", params={"format": "raw"}, headers=key).json()["value"]
        assert http.post("/sim/phone/scan", json={"phone": "+15550001", "qr": qr}, headers=key).status_code == 200
        wait_for(lambda: http.get("/api/sessions/demo", headers=key).json()["status"] == "WORKING", 5, "WORKING")
    assert demo.terminate() == 0


def test_second_gateway_on_the_same_data_dir_is_refused(tmp_path: Path, servers: list[Served]) -> None:
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "data"), WAGATE_ADMIN_KEY=ADMIN, WAGATE_KEYS=TEST_KEK)
    first = serve(tmp_path, env)
    servers.append(first)
    first.wait_healthy()
    second = subprocess.run(
        [sys.executable, "-m", "wagate", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 2
    assert "another wagate process" in second.stderr


def test_sigterm_while_sessions_are_connecting_exits_promptly(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    stack.start()
    stack.tenant()
    stack.link("slow", "+15550001")
    assert stack.gateway is not None
    assert stack.gateway.terminate() == 0
    stack.sim_post("/devices/+15550001/faults", {"kind": "slow", "delay": 60, "duration": 120})
    stack.start()
    stack.wait_status("slow", "STARTING")  # its login hangs at the simulator
    time.sleep(0.5)
    started = time.monotonic()
    assert stack.gateway.terminate(timeout=10) == 0
    assert time.monotonic() - started < 5


def test_serve_without_demo_runs_sessions_on_the_real_engine(tmp_path: Path, servers: list[Served]) -> None:
    """`make run`: neonize is the default engine; offline, a session keeps trying and says why it cannot connect."""
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        WAGATE_NEONIZE_PROBE="web.whatsapp.invalid:443",  # offline on any machine
    )
    gateway = started(tmp_path, env, servers)
    with loopback.client(base_url=gateway.base_url, timeout=10) as http:
        key = tenant_key(http)
        created = http.post("/api/sessions", json={"name": "phone"}, headers=key)
        assert created.status_code == 201, created.text
        assert created.json()["engine"] == "neonize"

        def unreachable() -> bool:
            body = http.get("/api/sessions/phone", headers=key).json()
            return bool(body["status"] == "STARTING" and "network unreachable" in (body.get("note") or ""))

        wait_for(unreachable, 10, "STARTING with network unreachable")
    assert gateway.terminate() == 0
    assert (tmp_path / "data" / "neonize").is_dir()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgresql_urls_are_taken_as_they_are_written(
    tmp_path: Path, servers: list[Served], pg_schema: str, scheme: str
) -> None:
    url = PG_DSN.replace("postgresql://", f"{scheme}://", 1)
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        WAGATE_DATABASE_URL=url,
        WAGATE_DATABASE_SCHEMA=pg_schema,
    )
    gateway = started(tmp_path, env, servers)
    assert loopback.get(gateway.base_url + "/ready").json()["store"] == "postgresql"
    with loopback.client(base_url=gateway.base_url, timeout=10) as http:
        tenant_key(http)
    assert gateway.terminate() == 0


def closed_port_url() -> str:
    return f"postgresql://wagate:hunter2@127.0.0.1:{free_port()}/wagate"  # nothing listens there


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("mysql://wagate:hunter2@127.0.0.1/wagate", "unsupported database 'mysql': use sqlite:///PATH or postgresql:"),
        (None, "cannot open the database at postgresql://wagate:***@127.0.0.1:{port}/wagate: Connection refused"),
        ("postgresql://wagate:hunter2@127.0.0.1:54x32/wagate", "malformed database URL: use sqlite:///PATH or"),
    ],
    ids=["wrong-scheme", "unreachable", "malformed"],
)
def test_a_database_that_cannot_be_opened_is_told_in_one_line(tmp_path: Path, url: str | None, cause: str) -> None:
    url = url or closed_port_url()
    port = url.rsplit(":", 1)[1].split("/")[0]
    env = {"WAGATE_DATA_DIR": str(tmp_path / "data"), "WAGATE_KEYS": TEST_KEK, "WAGATE_DATABASE_URL": url}
    result = refused("--port", str(free_port()), **env)
    assert result.stderr.startswith(f"wagate: WAGATE_DATABASE_URL: {cause.format(port=port)}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "hunter2" not in result.stderr


@pytest.mark.services
def test_a_database_that_does_not_exist_is_named(tmp_path: Path) -> None:
    require_postgres()
    url = PG_DSN.rsplit("/", 1)[0] + "/no_such_database_here"
    env = {"WAGATE_DATA_DIR": str(tmp_path / "data"), "WAGATE_KEYS": TEST_KEK, "WAGATE_DATABASE_URL": url}
    result = refused("--port", str(free_port()), **env)
    assert result.stderr.startswith("wagate: WAGATE_DATABASE_URL: cannot open the database at postgresql://")
    assert result.stderr.endswith(': database "no_such_database_here" does not exist\n')
    assert result.stderr.count("\n") == 1


def test_log_level_debug_keeps_the_traceback_of_a_database_failure(tmp_path: Path) -> None:
    env = {"WAGATE_DATA_DIR": str(tmp_path / "data"), "WAGATE_KEYS": TEST_KEK, "WAGATE_DATABASE_URL": closed_port_url()}
    result = refused("--port", str(free_port()), "--log-level", "debug", **env)
    assert "Traceback (most recent call last)" in result.stderr
    assert "ConnectionRefusedError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("wagate: WAGATE_DATABASE_URL: cannot open the database at")
    assert "hunter2" not in result.stderr


def test_a_taken_port_does_not_burn_the_first_admin_key(tmp_path: Path, servers: list[Served]) -> None:
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "data"))
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        result = refused("--host", "127.0.0.1", "--port", str(port), **env)
    assert f"wagate: cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "X-Api-Key" not in result.stderr

    gateway = started(tmp_path, env, servers)
    (key,) = re.findall(r"X-Api-Key: (wag_\S+)", gateway.log())  # made now, by the start that serves
    assert loopback.get(gateway.base_url + "/api/tenants", headers={"X-Api-Key": key}).status_code == 200
    assert gateway.terminate() == 0


def admin_key_new(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "wagate", "admin-key", "new", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    found = re.search(r"^admin api key: (wag_\S+)$", result.stdout, re.MULTILINE)
    assert found is not None, result.stdout
    return found.group(1)


def test_a_lost_admin_key_is_replaced_from_the_command_line(tmp_path: Path, servers: list[Served]) -> None:
    env = clean_env(WAGATE_DATA_DIR=str(tmp_path / "data"))
    gateway = started(tmp_path, env, servers)
    (first,) = re.findall(r"X-Api-Key: (wag_\S+)", gateway.log())
    assert "wagate admin-key new" in gateway.log()  # the console says how to get another

    def status(key: str) -> int:
        return loopback.get(gateway.base_url + "/api/tenants", headers={"X-Api-Key": key}).status_code

    second = admin_key_new(env)  # with the gateway running, on its database
    assert (status(first), status(second)) == (401, 200)
    third = admin_key_new(env, "--keep-others")
    assert (status(second), status(third)) == (200, 200)
    assert gateway.terminate() == 0


def modes(root: Path) -> dict[str, int]:
    """The permission bits of everything under ``root``, by path relative to it."""
    return {str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode) for path in [root, *root.rglob("*")]}


def test_data_files_are_their_owners_alone(tmp_path: Path, stack_factory: Callable[..., Stack]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # as a shared directory made by hand, or by an older wagate
    stack = stack_factory(WAGATE_KEYS="")  # development: the key is made in the data directory
    stack.start()
    assert stack.gateway is not None
    assert f"the data directory {data} was open to other users (mode 0755); it is 0700 now" in stack.gateway.log()
    stack.tenant()
    stack.link("s", "+15550001")
    stack.sim_post("/devices/+15550001/messages", {"from": "+15550002", "text": "hello", "count": 3})

    def stored() -> bool:
        with stack.http as http:
            return len(http.get("/api/s/chats/+15550002/messages").json()) == 3

    wait_for(stored, 10, "the messages stored")
    running = modes(data)
    assert {"wagate.db", "wagate.db-wal", "wagate.db-shm", "keys", "wagate.lock"} <= set(running)
    export = tmp_path / "s.wagate"
    subprocess.run(
        [sys.executable, "-m", "wagate", "backup", "export", "--tenant", "t", "--session", "s", "--out", str(export)],
        env=stack.env,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert stack.gateway.terminate() == 0
    assert stack.sim.terminate() == 0  # saves the simulator's state
    found = {**running, **modes(data), "export": stat.S_IMODE(export.stat().st_mode)}
    found["sim-state.json"] = stat.S_IMODE((tmp_path / "sim-state.json").stat().st_mode)
    assert found == {path: 0o700 if path == "." else 0o600 for path in found}


def test_a_session_that_cannot_connect_says_why_at_warning(tmp_path: Path, servers: list[Served]) -> None:
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        WAGATE_NEONIZE_PROBE="web.whatsapp.invalid:443",  # offline on any machine
        WAGATE_BACKOFF_BASE="0.05",
        WAGATE_BACKOFF_CAP="0.1",
        WAGATE_MAX_ATTEMPTS="3",
    )
    gateway = started(tmp_path, env, servers)
    with loopback.client(base_url=gateway.base_url, timeout=10) as http:
        key = tenant_key(http)
        assert http.post("/api/sessions", json={"name": "phone"}, headers=key).status_code == 201
        assert http.post("/api/sessions", json={"name": "toy", "engine": "sim"}, headers=key).status_code == 201

        def failed() -> bool:
            listed = http.get("/api/sessions", params={"all": "true"}, headers=key).json()
            return all(s["status"] == "FAILED" for s in listed)

        wait_for(failed, 15, "both sessions FAILED")
    assert gateway.terminate() == 0
    log = gateway.log()
    for attempt in (1, 2):
        assert re.search(rf"WARNING +wagate\.session: attempt {attempt} failed \([^)]*network unreachable", log), log
    assert re.search(r"WARNING +wagate\.session: STARTING -> FAILED \(max_retries\): .*network unreachable", log), log
    assert re.search(r"WARNING +wagate\.supervisor: session ses_\w+: \w+ -> FAILED \(engine_error\): .*sim", log), log

"""The OpenAPI document tells the truth: schemathesis, run against a started gateway (``--demo``, SQLite), finds no
5xx, no status, content type or body the document does not give, and no request of the documented form refused.

Two runs: the tenant's routes with a tenant's key, the admin's routes with the admin key. The budget is bounded
(examples per operation) and the generation derandomized, so a run takes the same path each time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, serve

pytestmark = pytest.mark.e2e

ADMIN = "openapi-admin-key-0123456789abcdef"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
)
ADMIN_PATHS = r"^/api/(tenants|server)"
EXAMPLES = 25
RUN_TIMEOUT = 240
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Served]:
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        # No webhook can be registered (429): deliveries to the URLs the run makes up would leave the machine.
        WAGATE_MAX_WEBHOOKS_PER_TENANT="0",
    )
    served = serve(tmp_path, env, "--demo")
    served.wait_healthy()
    yield served
    served.kill()


def schemathesis(served: Served, key: str, where: Path, *selection: str) -> tuple[int, str, float]:
    """Exit code, output and seconds of one run (its files go in ``where``)."""
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            f"{served.base_url}/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--header",
            f"X-Api-Key: {key}",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "1",
            "--generation-deterministic",
            "--workers",
            "1",
            "--no-color",
            *selection,
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return run.returncode, run.stdout + run.stderr, time.monotonic() - started


@pytest.mark.timeout(2 * RUN_TIMEOUT + 60)
def test_the_document_holds_for_the_tenant_and_the_admin(gateway: Served, tmp_path: Path) -> None:
    made = httpx.post(gateway.base_url + "/api/tenants", json={"name": "t"}, headers={"X-Api-Key": ADMIN})
    assert made.status_code == 201, made.text
    tenant_key = made.json()["api_key"]
    # A tenant's run leaves its own key alone (revoking it would make the rest of the run 401s).
    code, output, seconds = schemathesis(
        gateway,
        tenant_key,
        tmp_path,
        "--exclude-path-regex",
        ADMIN_PATHS,
        "--exclude-operation-id",
        "revoke_key_api_keys__key_id__delete",
    )
    assert code == 0, output
    print(f"tenant run: {seconds:.0f} s")
    code, output, seconds = schemathesis(gateway, ADMIN, tmp_path, "--include-path-regex", ADMIN_PATHS + "|^/api/keys")
    assert code == 0, output
    print(f"admin run: {seconds:.0f} s")
    assert "Traceback" not in gateway.log()

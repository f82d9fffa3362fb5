"""The OpenAPI document tells the truth: schemathesis, run against a started gateway (``--demo``, SQLite), finds no
5xx, no status, content type or body the document does not give, and no request of the documented form refused.

Two runs: the tenant's routes with a tenant's key, the admin's routes with the admin key. The budget is bounded
(examples per operation) and the generation derandomized, so a run takes the same path each time.

Webhooks are fuzzed on their working paths too, without a request leaving the machine: the gateway lets webhooks
reach loopback (``WAGATE_WEBHOOK_ALLOW_PRIVATE``), every webhook URL the run sends is pinned to a receiver this test
runs on loopback, and the routes of one webhook are given, most of the time, the id of an endpoint made before the
run (another one for DELETE, so that the rest keep theirs), else an id of the generator's own (a 404). The two
routes that set a URL run the generated phases only (the examples and coverage phases make bodies the pin does not
reach). The run's HTTP archive shows that no request set a webhook's URL to anything but the receiver, and that each
webhook route answered 2xx, bar one: a dead letter to queue again takes either the day-long retry schedule or the
SSRF guard's refusal, which this run lifts, so redelivering one is fuzzed on its 404.

One exemption (``schemathesis.toml``, the run's configuration): POST /api/sessions may answer 422 to a request of the
documented form (the positive data acceptance check, which by default allows 2xx, 3xx, 401, 403, 404, 409, 429 and
5xx), because a name already taken is ``422 session_exists``, as WAHA answers it, rather than a 409; the generator
cannot know which names the run has taken.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import loopback
from tests.support.builders import TEST_KEK
from tests.support.procs import Served, clean_env, serve
from tests.support.receiver import Receiver

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
KNOWN_ID = 0.8  # how often a webhook route is given the id of an endpoint that exists
# The examples and coverage phases send bodies of their own making, which the pinned URL does not reach (a webhook
# at "http://A" came of them): the routes that set a webhook's URL are left to the generated phases.
ONLY_GENERATED = "phases.examples.enabled = false\nphases.coverage.enabled = false"
RUN_TIMEOUT = 480  # a bound, not a budget: each run takes 1-2 minutes on an idle machine, four when it is shared
CONFIG = Path(__file__).with_name("schemathesis.toml")
WEBHOOK_ROUTES = [
    ("POST", "/api/webhooks"),
    ("GET", "/api/webhooks"),
    ("GET", "/api/webhooks/{id}"),
    ("PATCH", "/api/webhooks/{id}"),
    ("DELETE", "/api/webhooks/{id}"),
    ("POST", "/api/webhooks/{id}/enable"),
    ("POST", "/api/webhooks/{id}/rotate-secret"),
    ("GET", "/api/webhooks/{id}/deliveries"),
    ("POST", "/api/webhooks/{id}/redeliver"),
]
REDELIVER_ONE = ("POST", "/api/webhooks/{id}/deliveries/{seq}/redeliver")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Served]:
    env = clean_env(
        WAGATE_DATA_DIR=str(tmp_path / "data"),
        WAGATE_ADMIN_KEY=ADMIN,
        WAGATE_KEYS=TEST_KEK,
        # The receiver is on loopback, and every webhook URL of the run is pinned to it (fuzz_config). Media URLs,
        # which the guard's lifting would also let through, are never fetched: no session of the run is WORKING.
        WAGATE_WEBHOOK_ALLOW_PRIVATE="1",
        WAGATE_WEBHOOK_POLL_INTERVAL="0.2",
    )
    served = serve(tmp_path, env, "--demo")
    served.wait_healthy()
    yield served
    served.kill()


def webhook(gateway: Served, key: dict[str, str], url: str) -> str:
    """The id of a new webhook endpoint of the tenant whose key is ``key``."""
    made = loopback.post(gateway.base_url + "/api/webhooks", json={"url": url}, headers=key)
    assert made.status_code == 201, made.text
    made_id: str = made.json()["id"]
    return made_id


def fuzz_config(where: Path, url: str, kept: str, deleted: str) -> Path:
    """The run's configuration: ``schemathesis.toml``, and the webhook parts that depend on this run."""
    webhook_ops = r"^/api/webhooks/\{webhook_id\}"
    config = where / "schemathesis.toml"
    config.write_text(
        CONFIG.read_text()
        + f"""
[dictionaries]
kept = {{ values = ["{kept}"] }}
deleted = {{ values = ["{deleted}"] }}

[[operations]]
include-path = "/api/webhooks"
include-method = "POST"
parameters = {{ "body.url" = "{url}" }}
{ONLY_GENERATED}

[[operations]]
include-path = "/api/webhooks/{{webhook_id}}"
include-method = "PATCH"
parameters = {{ "path.webhook_id" = {{ dictionary = "kept", probability = {KNOWN_ID} }}, "body.url" = "{url}" }}
{ONLY_GENERATED}

[[operations]]
include-path-regex = '{webhook_ops}'
exclude-method = ["DELETE", "PATCH"]
parameters = {{ "path.webhook_id" = {{ dictionary = "kept", probability = {KNOWN_ID} }} }}

[[operations]]
include-path = "/api/webhooks/{{webhook_id}}"
include-method = "DELETE"
parameters = {{ "path.webhook_id" = {{ dictionary = "deleted", probability = {KNOWN_ID} }} }}
"""
    )
    return config


def answers(har: Path) -> dict[tuple[str, str], set[int]]:
    """The statuses each route answered in a run's HTTP archive: (method, path template) -> statuses."""
    found: dict[tuple[str, str], set[int]] = defaultdict(set)
    for entry in json.loads(har.read_text())["log"]["entries"]:
        path = urlsplit(entry["request"]["url"]).path
        template = re.sub(r"^/api/webhooks/[^/]+", "/api/webhooks/{id}", path)
        template = re.sub(r"/deliveries/[^/]+/", "/deliveries/{seq}/", template)
        found[(entry["request"]["method"], template)].add(entry["response"]["status"])
    return found


def set_urls(har: Path) -> dict[tuple[str, str], set[str]]:
    """The webhook URLs that requests of a run's HTTP archive set with success, by (method, path)."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, status = entry["request"], entry["response"]["status"]
        if request["method"] in ("POST", "PATCH") and "/api/webhooks" in request["url"] and 200 <= status < 300:
            body = json.loads(request.get("postData", {}).get("text") or "null")
            if isinstance(body, dict) and "url" in body:
                found[(request["method"], urlsplit(request["url"]).path)].add(str(body["url"]))
    return found


def schemathesis(served: Served, key: str, where: Path, config: Path, *selection: str) -> tuple[int, str, float]:
    """Exit code, output and seconds of one run (its files go in ``where``)."""
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
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
def test_the_document_holds_for_the_tenant_and_the_admin(gateway: Served, receiver: Receiver, tmp_path: Path) -> None:
    made = loopback.post(gateway.base_url + "/api/tenants", json={"name": "t"}, headers={"X-Api-Key": ADMIN})
    assert made.status_code == 201, made.text
    tenant_key = {"X-Api-Key": made.json()["api_key"]}
    kept, deleted = (webhook(gateway, tenant_key, receiver.url(path)) for path in ("/kept", "/deleted"))
    config = fuzz_config(tmp_path, receiver.url("/fuzzed"), kept, deleted)
    har = tmp_path / "tenant.har"
    # A tenant's run leaves its own key alone (deleting it, switching it off or scoping it, which the run finds in
    # GET /api/keys and could pass on, would make the rest of the run 401s and 403s).
    code, output, seconds = schemathesis(
        gateway,
        tenant_key["X-Api-Key"],
        tmp_path,
        config,
        "--exclude-path-regex",
        ADMIN_PATHS,
        "--exclude-operation-id",
        "delete_key_api_keys__key_id__delete",
        "--exclude-operation-id",
        "update_key_api_keys__key_id__put",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    )
    assert code == 0, output
    print(f"tenant run: {seconds:.0f} s")
    answered = answers(har)
    for route in WEBHOOK_ROUTES:
        assert any(200 <= status < 300 for status in answered[route]), (route, sorted(answered[route]))
    assert 404 in answered[REDELIVER_ONE]  # a webhook that exists, a dead letter that does not (see above)
    # No webhook was set to a URL but the receiver's, and each endpoint still points at it: nothing left the machine.
    for (method, target), bodies in set_urls(har).items():
        assert bodies <= {receiver.url("/fuzzed")}, (method, target, sorted(bodies)[:5])
    listed = loopback.get(gateway.base_url + "/api/webhooks", headers=tenant_key)
    assert listed.status_code == 200, listed.text
    assert {w["url"] for w in listed.json()} <= {receiver.url(path) for path in ("/kept", "/deleted", "/fuzzed")}
    assert {r.path for r in receiver.received} <= {"/kept", "/deleted", "/fuzzed"}

    code, output, seconds = schemathesis(
        gateway, ADMIN, tmp_path, config, "--include-path-regex", ADMIN_PATHS + "|^/api/keys"
    )
    assert code == 0, output
    print(f"admin run: {seconds:.0f} s")
    assert "Traceback" not in gateway.log()

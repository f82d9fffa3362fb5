"""Arbitrary input never produces a 500: it is a 4xx with the error shape, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api import ADMIN

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({"name": st.text(max_size=80)}, optional={"config": JSON, "start": JSON, "engine": JSON}),
)
PATH_NAMES = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=80)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES, name=PATH_NAMES)
async def test_random_bodies_and_names_never_500(client: AsyncClient, body: Any, name: str) -> None:
    # The client (and its store) lives across examples; the tenant is made once.
    tenant_response = await client.post("/api/tenants", json={"name": "fuzz", "max_sessions": 1000}, headers=ADMIN)
    if tenant_response.status_code == 201:
        _KEYS["fuzz"] = tenant_response.json()["api_key"]
    tenant = {"X-Api-Key": _KEYS["fuzz"]}
    before = (await client.get("/api/sessions", params={"all": 1}, headers=tenant)).json()
    response = await client.post("/api/sessions", content=json.dumps(body), headers=tenant)
    assert response.status_code < 500, response.text
    after = (await client.get("/api/sessions", params={"all": 1}, headers=tenant)).json()
    if response.status_code == 201:
        assert len(after) == len(before) + 1
    else:
        assert set(response.json()["error"]) == {"code", "message"}
        assert after == before  # a refused request stores nothing
    for method in ("GET", "PUT", "DELETE"):
        answer = await client.request(
            method, f"/api/sessions/{quote(name, safe='')}", content=json.dumps(body), headers=tenant
        )
        assert answer.status_code < 500, answer.text
    assert (await client.post("/api/tenants", content=json.dumps(body), headers=ADMIN)).status_code < 500


_KEYS: dict[str, str] = {}

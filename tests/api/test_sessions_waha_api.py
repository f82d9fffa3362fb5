"""The session API as a WAHA client drives it: WAHA's config blocks, its generated names, ``me``, the proxy's
sealed password, ``config.webhooks`` as the session's endpoints, and WAHA's older routes; over a real store (SQLite
and PostgreSQL) through the real ASGI app."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from httpx import AsyncClient

from tests.support.api import assert_error, key_hash, make_tenant, working_session
from wagate.domain.sessions import Proxy, Status, StatusChange
from wagate.gateway import Gateway
from wagate.ids import TenantId
from wagate.store.proxies import open_proxy

WAHA_CONFIG: dict[str, Any] = {
    "metadata": {"user.id": "123", "user.email": "email@example.com"},
    "proxy": {"server": "localhost:3128", "username": "me", "password": "s3cret"},
    "debug": True,
    "ignore": {"status": True, "groups": False, "channels": True, "broadcast": False},
    "client": {"deviceName": "MacOS", "browserName": "Firefox"},
    "noweb": {"markOnline": False, "store": {"enabled": True, "fullSync": False}},
    "gows": {"storage": {"messages": True, "groups": None, "chats": True, "labels": False}},
    "webjs": {"tagsEventsOn": False},
}


async def tenant_of(gateway: Gateway, key: dict[str, str]) -> TenantId:
    found = await gateway.store.api_keys.find_active(key_hash(key))
    assert found is not None
    assert found.tenant_id is not None
    return found.tenant_id


async def sessions_and_hooks(client: AsyncClient, key: dict[str, str]) -> tuple[list[str], list[str]]:
    sessions = (await client.get("/api/sessions", params={"all": 1}, headers=key)).json()
    hooks = (await client.get("/api/webhooks", headers=key)).json()
    return [s["name"] for s in sessions], [h["url"] for h in hooks]


async def test_every_waha_config_block_is_taken_and_given_back(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    created = await client.post(
        "/api/sessions", json={"name": "full", "start": False, "apps": None, "config": WAHA_CONFIG}, headers=a
    )
    assert created.status_code == 201, created.text
    shown = created.json()["config"]
    expected = {**WAHA_CONFIG, "idle_stop": False}
    expected["proxy"] = {**WAHA_CONFIG["proxy"], "password": "********"}  # never shown again
    expected["gows"] = {"storage": {"messages": True, "chats": True, "labels": False}}  # a null is not set
    assert shown == expected
    assert (await client.get("/api/sessions/full", headers=a)).json()["config"] == expected
    # The row keeps the password sealed: not in the stored config, opened only for the engine.
    tenant = await tenant_of(gateway, a)
    stored = await gateway.store.sessions.get(tenant, "full")
    assert stored is not None
    assert "s3cret" not in json.dumps(stored.config)
    assert await open_proxy(gateway.vaults, tenant, stored.id, stored.config) == Proxy("localhost:3128", "me", "s3cret")


async def test_a_session_without_a_name_is_named_as_waha_names_it(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    made = await client.post("/api/sessions", json={}, headers=a)
    assert made.status_code == 201
    name = made.json()["name"]
    assert re.fullmatch(r"session_[0-9a-f]{32}", name), name
    other = (await client.post("/api/sessions", json={"start": False}, headers=a)).json()["name"]
    assert other != name
    assert (await client.get(f"/api/sessions/{name}", headers=a)).json()["desired"] == "running"


@pytest.mark.parametrize(
    "config",
    [
        {"proxy": {"username": "no server"}},
        {"proxy": {"server": "host:3128", "port": 1}},
        {"proxy": {"server": "ftp://host:21"}},
        {"proxy": {"server": "host:3128", "password": "********"}},  # stands for a stored one: there is none
        {"proxy": {"server": "host:3128", "password": "a\x00b"}},
        {"debug": "loud"},
        {"ignore": {"stories": True}},
        {"client": {"deviceName": "x" * 256}},
        {"noweb": {"markOnline": "maybe"}},
        {"noweb": {"store": {"enabled": True, "sync": True}}},
        {"gows": {"storage": {"messages": 7}}},
        {"webjs": {"tags": True}},
        {"webhooks": [{"url": "http://hooks.example.com/x"}]},
        {"webhooks": [{"url": "http://hooks.example.com/x", "events": ["no.such.event"]}]},
        {"webhooks": [{"url": "ftp://hooks.example.com/x", "events": ["*"]}]},
        {"webhooks": [{"url": "http://10.0.0.1/x", "events": ["*"]}]},  # a private address: the SSRF guard
        {"webhooks": [{"url": "http://hooks.example.com/x", "events": ["*"], "retries": {"policy": "random"}}]},
        {"webhooks": [{"url": "http://hooks.example.com/x", "events": ["*"], "hmac": {"secret": "k"}}]},
        {
            "webhooks": [
                {"url": "http://h.example.com/", "events": ["*"], "customHeaders": [{"name": "Host", "value": "x"}]}
            ]
        },
        {"webhooks": [{"url": "http://h.example.com/", "events": ["*"], "customHeaders": [{"name": "X-A"}]}]},
        {
            "webhooks": [
                {"url": "http://h.example.com/", "events": ["*"], "customHeaders": [{"name": "X", "value": "********"}]}
            ]
        },
        {"webhooks": [{"url": f"http://h{i}.example.com/", "events": ["*"]} for i in range(11)]},
        {"webhooks": [{"url": "http://h.example.com/", "events": ["*"], "hmac": {"key": "********"}}]},
        {"webhooks": [{"url": "http://h.example.com/", "events": ["*"], "retries": {"attempts": 101}}]},
        {"nonsense": True},
    ],
)
async def test_a_bad_config_is_4xx_and_stores_nothing(client: AsyncClient, config: dict[str, Any]) -> None:
    a = await make_tenant(client, "a")
    await client.post("/api/sessions", json={"name": "kept", "start": False}, headers=a)
    made = await client.post("/api/sessions", json={"name": "new", "config": config}, headers=a)
    assert_error(made, 422)
    changed = await client.put("/api/sessions/kept", json={"config": config}, headers=a)
    assert_error(changed, 422)
    assert await sessions_and_hooks(client, a) == (["kept"], [])
    assert (await client.get("/api/sessions/kept", headers=a)).json()["config"] == {
        "metadata": {},
        "debug": False,
        "idle_stop": False,
    }


async def test_the_webhooks_of_a_config_are_the_session_s_endpoints(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    hooks = [
        {
            "url": "https://hooks.example.com/one",
            "events": ["message", "session.status"],
            "customHeaders": [{"name": "Authorization", "value": "Bearer t0ken"}],
            "hmac": {"key": "k"},
            "retries": {"delaySeconds": 2, "attempts": 5, "policy": "linear"},
        },
        {"url": "https://hooks.example.com/two", "events": ["*"]},
    ]
    made = await client.post("/api/sessions", json={"name": "main", "config": {"webhooks": hooks}}, headers=a)
    assert made.status_code == 201, made.text
    endpoints = (await client.get("/api/webhooks", headers=a)).json()
    retries = {"delaySeconds": 2.0, "attempts": 5, "policy": "linear"}
    assert [(e["url"], e["session"], e["events"], e["header_names"], e["hmac"], e["retries"]) for e in endpoints] == [
        ("https://hooks.example.com/one", "main", ["message", "session.status"], ["authorization"], True, retries),
        ("https://hooks.example.com/two", "main", ["*"], [], False, None),
    ]
    shown = [
        {
            "url": "https://hooks.example.com/one",
            "events": ["message", "session.status"],
            "hmac": {"key": "********"},
            "retries": retries,
            "customHeaders": [{"name": "authorization", "value": "********"}],
        },
        {"url": "https://hooks.example.com/two", "events": ["*"]},
    ]
    assert made.json()["config"]["webhooks"] == shown
    # The same objects: a change through /api/webhooks shows in the session's config.
    two = endpoints[1]["id"]
    patched = await client.patch(f"/api/webhooks/{two}", json={"events": ["message.*"]}, headers=a)
    assert patched.status_code == 200
    config = (await client.get("/api/sessions/main", headers=a)).json()["config"]
    assert config["webhooks"][1] == {"url": "https://hooks.example.com/two", "events": ["message.*"]}
    # A config put back as it was read keeps the sealed header; a PUT without webhooks leaves them.
    put = await client.put("/api/sessions/main", json={"config": {**config, "metadata": {"v": "2"}}}, headers=a)
    assert put.status_code == 200, put.text
    assert put.json()["config"]["webhooks"] == config["webhooks"]
    one = await gateway_endpoint(client, a, "https://hooks.example.com/one")
    assert one["id"] == endpoints[0]["id"]  # changed in place: its secret and its queue stay
    opened = await gateway.store.webhooks.secret_all_tenants(one["id"])
    assert opened is not None
    assert (opened.hmac_key, opened.headers) == ("k", (("authorization", "Bearer t0ken"),))
    assert (await client.put("/api/sessions/main", json={}, headers=a)).json()["config"]["webhooks"] == config[
        "webhooks"
    ]
    # Given, they replace the session's endpoints: one kept by its URL, one new, one gone.
    new = [
        {"url": "https://hooks.example.com/one", "events": ["*"]},
        {"url": "https://hooks.example.com/3", "events": ["*"]},
    ]
    replaced = await client.put("/api/sessions/main", json={"config": {"webhooks": new}}, headers=a)
    assert replaced.json()["config"]["webhooks"] == new
    assert (await gateway_endpoint(client, a, "https://hooks.example.com/one"))["id"] == endpoints[0]["id"]
    assert (await gateway_endpoint(client, a, "https://hooks.example.com/one"))["header_names"] == []
    assert (await client.put("/api/sessions/main", json={"config": {"webhooks": []}}, headers=a)).status_code == 200
    assert await sessions_and_hooks(client, a) == (["main"], [])
    # Deleting the session deletes its endpoints; those of other sessions, and of none, stay.
    await client.put("/api/sessions/main", json={"config": {"webhooks": new}}, headers=a)
    await client.post("/api/webhooks", json={"url": "https://hooks.example.com/all"}, headers=a)
    await client.post("/api/sessions", json={"name": "other", "config": {"webhooks": new[:1]}}, headers=a)
    assert (await client.delete("/api/sessions/main", headers=a)).status_code == 200
    assert await sessions_and_hooks(client, a) == (
        ["other"],
        ["https://hooks.example.com/all", "https://hooks.example.com/one"],
    )


async def gateway_endpoint(client: AsyncClient, key: dict[str, str], url: str) -> dict[str, Any]:
    listed: list[dict[str, Any]] = (await client.get("/api/webhooks", headers=key)).json()
    (found,) = [e for e in listed if e["url"] == url]
    return found


async def test_the_webhook_limit_is_429_and_stores_nothing(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    for i in range(9):
        await client.post("/api/webhooks", json={"url": f"https://hooks.example.com/{i}"}, headers=a)
    two = [{"url": f"https://hooks.example.com/s{i}", "events": ["*"]} for i in range(2)]
    assert_error(await client.post("/api/sessions", json={"name": "s", "config": {"webhooks": two}}, headers=a), 429)
    names, urls = await sessions_and_hooks(client, a)
    assert (names, len(urls)) == ([], 9)
    one = await client.post("/api/sessions", json={"name": "s", "config": {"webhooks": two[:1]}}, headers=a)
    assert one.status_code == 201
    # Replacing the session's own endpoint needs no more room than it has.
    again = await client.put("/api/sessions/s", json={"config": {"webhooks": two[1:]}}, headers=a)
    assert again.status_code == 200


async def test_the_proxy_password_is_kept_sealed_through_a_round_trip(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    tenant = await tenant_of(gateway, a)
    proxy = {"server": "socks5://proxy.example.com:1080", "username": "u", "password": "first"}
    made = await client.post("/api/sessions", json={"name": "p", "start": False, "config": {"proxy": proxy}}, headers=a)
    config = made.json()["config"]
    assert config["proxy"]["password"] == "********"

    async def opened() -> Proxy | None:
        session = await gateway.store.sessions.get(tenant, "p")
        assert session is not None
        return await open_proxy(gateway.vaults, tenant, session.id, session.config)

    await client.put("/api/sessions/p", json={"config": config}, headers=a)  # put back as read
    assert await opened() == Proxy("socks5://proxy.example.com:1080", "u", "first")
    await client.put("/api/sessions/p", json={"config": {"proxy": {**proxy, "password": "second"}}}, headers=a)
    assert await opened() == Proxy("socks5://proxy.example.com:1080", "u", "second")
    await client.put("/api/sessions/p", json={"config": {"proxy": {"server": "h:1"}}}, headers=a)
    assert await opened() == Proxy("h:1")
    await client.put("/api/sessions/p", json={"config": {}}, headers=a)
    assert await opened() is None


async def test_me_is_waha_s_me_info_and_the_worker_is_the_lease_holder(client: AsyncClient, gateway: Gateway) -> None:
    a = await make_tenant(client, "a")
    assert (await client.post("/api/sessions", json={"name": "new"}, headers=a)).status_code == 201
    unlinked = await client.get("/api/sessions/new/me", headers=a)
    assert (unlinked.status_code, unlinked.content) == (204, b"")
    await working_session(client, gateway, a)  # recorded WORKING by "test#1", known only by its phone
    main = (await client.get("/api/sessions/main", headers=a)).json()
    assert main["me"] == {"id": "15550009@c.us", "jid": None, "lid": None, "reachoutTimelock": None, "pushName": ""}
    assert main["assignedWorker"] == "test#1"
    assert (await client.get("/api/sessions/main/me", headers=a)).json() == main["me"]
    tenant = await tenant_of(gateway, a)
    session = await gateway.store.sessions.get(tenant, "main")
    assert session is not None
    me = {"id": "15550009:7@s.whatsapp.net", "phone": "+15550009", "pushName": "Shop"}
    lease = await gateway.store.leases.acquire(session.id, "test#1", 60)
    assert lease is not None
    change = StatusChange(tenant, session.id, "test#1", lease.epoch, Status.WORKING, me=me)
    await gateway.store.sessions.set_status_many([change])
    assert (await client.get("/api/sessions/main/me", headers=a)).json() == {
        "id": "15550009@c.us",
        "jid": "15550009:7@s.whatsapp.net",
        "lid": None,
        "reachoutTimelock": None,
        "pushName": "Shop",
    }
    assert (await client.get("/api/sessions/new", headers=a)).json()["assignedWorker"] is None


async def test_put_takes_start_and_stop(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    await client.post("/api/sessions", json={"name": "s", "start": False}, headers=a)
    started = await client.put("/api/sessions/s", json={"start": True}, headers=a)
    assert (started.status_code, started.json()["desired"]) == (200, "running")
    kept = await client.put("/api/sessions/s", json={"config": {"metadata": {"k": "v"}}}, headers=a)
    assert kept.json()["desired"] == "running"  # a config alone keeps what was asked
    stopped = await client.put("/api/sessions/s", json={"stop": True, "config": {"debug": True}}, headers=a)
    assert (stopped.json()["desired"], stopped.json()["config"]["debug"]) == ("stopped", True)
    assert_error(await client.put("/api/sessions/nosuch", json={"start": True}, headers=a), 404, "session_not_found")


async def test_waha_s_older_routes_take_the_name_in_the_body(client: AsyncClient) -> None:
    a = await make_tenant(client, "a")
    started = await client.post(
        "/api/sessions/start", json={"name": "old", "config": {"metadata": {"v": "1"}}}, headers=a
    )
    assert started.status_code == 201, started.text
    assert (started.json()["name"], started.json()["desired"]) == ("old", "running")
    assert_error(await client.post("/api/sessions/start", json={"name": "old"}, headers=a), 422, "session_started")
    stopped = await client.post("/api/sessions/stop", json={"name": "old"}, headers=a)
    assert (stopped.status_code, stopped.content) == (201, b"")
    assert (await client.get("/api/sessions/old", headers=a)).json()["desired"] == "stopped"
    # A stopped session starts again with the config given (replacing its own).
    again = await client.post("/api/sessions/start", json={"name": "old", "config": {"debug": True}}, headers=a)
    assert (again.json()["desired"], again.json()["config"]) == (
        "running",
        {"metadata": {}, "debug": True, "idle_stop": False},
    )
    assert (await client.post("/api/sessions/logout", json={"name": "old"}, headers=a)).status_code == 201
    assert_error(await client.get("/api/sessions/old", headers=a), 404)
    assert_error(await client.post("/api/sessions/stop", json={"name": "gone"}, headers=a), 404)
    for path, body in (
        ("/api/sessions/start", {}),
        ("/api/sessions/start", {"name": "x", "start": True}),
        ("/api/sessions/stop", {"name": "x", "logout": "maybe"}),
        ("/api/sessions/logout", {"name": "../x"}),
    ):
        assert_error(await client.post(path, json=body, headers=a), 422)
    assert await sessions_and_hooks(client, a) == ([], [])

"""Shared fixtures: real stores on SQLite and PostgreSQL, a gateway, and an HTTP client on the real app."""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import subprocess
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from wagate.api.app import create_app
from wagate.config import Settings
from wagate.gateway import Gateway
from wagate.store import open_store
from wagate.store.base import Store

# neonize's import runs `os.popen("uname -a")` and never closes it: the pipe stays with an unreaped process that
# subprocess reaps at the next Popen, warning then, in whichever test starts a process. Import it once, here, and
# let the child be reaped while that warning is expected.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ResourceWarning)
    import neonize.aioze.client  # noqa: F401

    deadline = time.monotonic() + 5
    while subprocess._active and time.monotonic() < deadline:  # type: ignore[attr-defined]
        subprocess._cleanup()  # type: ignore[attr-defined]
        time.sleep(0.01)
    gc.collect()

PG_DSN = os.environ.get("WAGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("WAGATE_REQUIRE_SERVICES") == "1"
TEST_KEK = "t1:" + base64.b64encode(bytes(range(32))).decode()
ADMIN_KEY = "test-admin-key-0123456789"


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {PG_DSN} is not reachable ({type(exc).__name__}: {exc})"
    return None


_PG_PROBLEM: list[str | None] = []
REDIS_URL = os.environ.get("WAGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    """Skip (or, with WAGATE_REQUIRE_SERVICES=1, fail) when Redis is unreachable."""
    import redis
    from redis.exceptions import RedisError

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
        client.ping()
        client.close()
    except (RedisError, OSError) as exc:
        problem = f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__}: {exc})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem}; WAGATE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(problem)


def require_postgres() -> None:
    """Skip (or, with WAGATE_REQUIRE_SERVICES=1, fail) when PostgreSQL is unreachable."""
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_reachable())
    problem = _PG_PROBLEM[0]
    if problem is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem}; WAGATE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(problem)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards."""
    import asyncpg

    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    yield schema
    asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))


def pg_url() -> str:
    return PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(database URL, schema) for each backend the contract suites run over."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'wagate.db'}", None
    schema: str = request.getfixturevalue("pg_schema")
    return pg_url(), schema


@pytest.fixture
async def store(backend: tuple[str, str | None]) -> AsyncIterator[Store]:
    url, schema = backend
    opened = await open_store(url, schema=schema)
    yield opened
    await opened.close()


def make_settings(tmp_path: Path, url: str | None = None, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "database_url": url,
        "keys": TEST_KEK,
        "active_key": "t1",
        "admin_key": ADMIN_KEY,
        # No test reaches WhatsApp by accident, online or not (.invalid never resolves).
        "neonize_probe": "web.whatsapp.invalid:443",
    }
    values.update(extra)
    return Settings.model_validate(values)


@pytest.fixture
async def gateway(backend: tuple[str, str | None], tmp_path: Path) -> AsyncIterator[Gateway]:
    url, schema = backend
    gw = await Gateway.open(make_settings(tmp_path, url), schema=schema)
    yield gw
    await gw.close()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[AsyncClient]:
    app = create_app(gateway.settings, gateway=gateway, supervise=False)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://wagate.test") as http:
        yield http

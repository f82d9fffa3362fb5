"""The shared fixtures: real stores on SQLite and PostgreSQL, a gateway, and an HTTP client on the real app."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from tests.support.builders import make_settings
from tests.support.services import PG_DSN, pg_url, require_postgres
from wagate.api.app import create_app
from wagate.gateway import Gateway
from wagate.runtime.node import Node
from wagate.store import open_store
from wagate.store.base import Store


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
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


@pytest.fixture
async def gateway(backend: tuple[str, str | None], tmp_path: Path) -> AsyncIterator[Gateway]:
    url, schema = backend
    gw = await Gateway.open(make_settings(tmp_path, url), schema=schema)
    yield gw
    await gw.close()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[AsyncClient]:
    app = create_app(Node(gateway, supervise=False))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://wagate.test") as http:
        yield http

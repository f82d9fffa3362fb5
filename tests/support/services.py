"""The external services the tests can use (PostgreSQL, Redis): where they are, and skipping (or, in CI, failing)
when they are not there."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.support.tiers import SERVICES, needs

PG_DSN = os.environ.get("WAGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WAGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("WAGATE_REQUIRE_SERVICES") == "1"


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


def require_redis() -> None:
    """Skip (or, with WAGATE_REQUIRE_SERVICES=1, fail) when Redis is unreachable."""
    needs(SERVICES, f"needs Redis at {REDIS_URL}")
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
    needs(SERVICES, "needs PostgreSQL")
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_reachable())
    problem = _PG_PROBLEM[0]
    if problem is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem}; WAGATE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(problem)


def pg_url() -> str:
    return PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)

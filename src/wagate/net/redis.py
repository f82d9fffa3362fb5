"""Redis, optional (``pip install 'wagate[redis]'``): its only use is the server status's reachability ping.

Nothing touches Redis, or imports its client, while ``WAGATE_REDIS_URL`` is unset. With it set, a process checks at
start that the client is installed (:func:`require_redis_client`), so that a missing extra is one line at start
rather than an error at the first status request.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from wagate.config import Settings
from wagate.errors import ConfigError

__all__ = ["MISSING_EXTRA", "redis_status", "require_redis_client"]

MISSING_EXTRA = "WAGATE_REDIS_URL is set but the Redis client is not installed: pip install 'wagate[redis]'"


def require_redis_client(settings: Settings) -> None:
    """ConfigError naming the extra when Redis is configured and its client cannot be imported."""
    if settings.redis_url is None:
        return
    try:
        importlib.import_module("redis.asyncio")
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None


async def redis_status(settings: Settings) -> dict[str, Any]:
    """Whether Redis answers a ping, and how fast; never its URL (it may hold a password)."""
    if settings.redis_url is None:
        return {"configured": False}
    try:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError
    except ImportError:
        return {"configured": True, "reachable": False, "error": "client_not_installed"}

    client = aioredis.from_url(settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2)
    started = time.perf_counter()
    try:
        await client.ping()
        return {"configured": True, "reachable": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except (RedisError, OSError) as exc:
        return {"configured": True, "reachable": False, "error": type(exc).__name__}
    finally:
        await client.aclose()

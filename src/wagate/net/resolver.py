"""The SSRF guard inside aiohttp, for media fetched by URL: a resolver that refuses internal addresses.

Apart from :mod:`wagate.net.ssrf` so that what only checks addresses (the webhook sender's child process above all)
does not load aiohttp.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from wagate.net.ssrf import BlockedAddress, refused

__all__ = ["GuardedResolver", "connector_options"]


class GuardedResolver(AbstractResolver):
    """Resolves names and refuses the whole name when any of its addresses is internal (no partial answers that
    a rebinding DNS server could steer). The connection then goes to the checked addresses only."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            why = refused(host, ipaddress.ip_address(result["host"].split("%", 1)[0]))
            if why is not None:
                raise BlockedAddress(why)
        return results

    async def close(self) -> None:
        await self._inner.close()


def connector_options(*, allow_private: bool) -> dict[str, Any]:
    """Keyword arguments for ``aiohttp.TCPConnector``: the guarded resolver unless the guard is lifted."""
    return {} if allow_private else {"resolver": GuardedResolver()}

"""Media for outbound messages: base64 from the request, or a URL that wagate fetches itself.

A URL is fetched once, when the message is queued, through the SSRF guard (every resolved address checked, no
redirect to an internal one: redirects are followed by hand, each hop checked), within a time limit and a size limit
that stops reading at the limit. The engine never sees the URL (neonize would fetch it with no limit at all).

The fetcher's connections are shared by every tenant, so each tenant gets a few fetches at once
(:class:`TenantFetches`): a slow host named by one tenant holds that tenant's share, never the whole pool, and the
tenant's further sends wait a bounded time for a turn, then answer 429 with the time by which a turn is sure to free.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

from wagate import __version__
from wagate.errors import QuotaExceeded, Unprocessable
from wagate.ids import TenantId
from wagate.net.resolver import connector_options
from wagate.net.ssrf import BlockedAddress, check_url

__all__ = [
    "MAX_REDIRECTS",
    "Media",
    "MediaBusy",
    "MediaError",
    "MediaFetcher",
    "TenantFetches",
    "decode_base64",
    "guess_mimetype",
]

MAX_REDIRECTS = 3


@dataclass(frozen=True, slots=True)
class Media:
    data: bytes
    mimetype: str
    filename: str | None


class MediaError(Unprocessable):
    code = "media_unavailable"


class MediaBusy(QuotaExceeded):
    """The tenant's media fetches are all taken (429, with the seconds after which one is sure to be free)."""

    code = "media_fetch_busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(slots=True)
class _Turns:
    """One tenant's fetches: its slots, when each running fetch began, and how many hold or wait for a slot."""

    slots: asyncio.Semaphore
    began: list[float] = field(default_factory=list)
    users: int = 0


class TenantFetches:
    """At most ``per_tenant`` fetches of one tenant at once. Another waits up to ``wait`` seconds for a turn, then is
    refused (:class:`MediaBusy`) with the time by which the oldest running fetch has ended (each is bounded by the
    fetch's ``timeout``). A tenant's entry lives only while it fetches or waits."""

    def __init__(self, *, per_tenant: int, wait: float, timeout: float) -> None:
        self.per_tenant = per_tenant
        self.wait = wait
        self.timeout = timeout
        self._tenants: dict[TenantId, _Turns] = {}

    def __len__(self) -> int:
        """How many tenants fetch, or wait to, now."""
        return len(self._tenants)

    @contextlib.asynccontextmanager
    async def turn(self, tenant_id: TenantId) -> AsyncIterator[None]:
        turns = self._tenants.get(tenant_id)
        if turns is None:
            turns = self._tenants[tenant_id] = _Turns(asyncio.Semaphore(self.per_tenant))
        turns.users += 1
        try:
            await self._take(turns)
            began = asyncio.get_running_loop().time()
            turns.began.append(began)
            try:
                yield
            finally:
                turns.began.remove(began)
                turns.slots.release()
        finally:
            turns.users -= 1
            if not turns.users:
                del self._tenants[tenant_id]

    async def _take(self, turns: _Turns) -> None:
        try:
            async with asyncio.timeout(self.wait):  # a free slot is taken without waiting, even with wait=0
                await turns.slots.acquire()
        except TimeoutError:
            now = asyncio.get_running_loop().time()
            free_by = min(turns.began, default=now) + self.timeout
            retry_after = max(1, math.ceil(free_by - now))
            raise MediaBusy(
                f"this tenant already has {self.per_tenant} media URLs being fetched; retry after {retry_after}s, or"
                " send the file as data (base64)",
                retry_after=retry_after,
            ) from None


def decode_base64(data: str, max_bytes: int) -> bytes:
    if len(data) > (max_bytes * 4) // 3 + 4:
        raise MediaError(f"the media is larger than {max_bytes} bytes", code="media_too_large")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("file.data is not valid base64", code="invalid_media") from None


class MediaFetcher:
    """Fetches media URLs with the guard, a timeout, a size limit and a share of fetches per tenant. One per process
    (it keeps a connection pool)."""

    def __init__(self, *, max_bytes: int, timeout: float, allow_private: bool, per_tenant: int, wait: float) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_private = allow_private
        self.turns = TenantFetches(per_tenant=per_tenant, wait=wait, timeout=timeout)
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=50, **connector_options(allow_private=self.allow_private))
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"user-agent": f"wagate/{__version__}"},
            )
        return self._http

    async def fetch(self, url: str, tenant_id: TenantId) -> Media:
        """The media at ``url``, fetched in one of ``tenant_id``'s turns; raises :class:`MediaError` or
        :class:`MediaBusy`."""
        async with self.turns.turn(tenant_id):
            return await self._guarded(url)

    async def _guarded(self, url: str) -> Media:
        try:
            async with asyncio.timeout(self.timeout):  # the whole fetch, redirects too (each request has it as well)
                return await self._fetch(url)
        except BlockedAddress as exc:
            raise MediaError(f"the media URL is refused: {exc}", code="media_url_refused") from None
        except TimeoutError:
            raise MediaError(f"the media URL did not answer within {self.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise MediaError(f"the media URL could not be fetched ({type(exc).__name__})") from None

    async def _fetch(self, url: str) -> Media:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allow_private=self.allow_private)
            async with self._session().get(url, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status != 200:
                    raise MediaError(f"the media URL answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > self.max_bytes:
                    raise MediaError(f"the media is larger than {self.max_bytes} bytes", code="media_too_large")
                data = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise MediaError(f"the media is larger than {self.max_bytes} bytes", code="media_too_large")
                mimetype = resp.content_type or "application/octet-stream"
                return Media(bytes(data), mimetype, _filename(url))
        raise MediaError(f"the media URL redirected more than {MAX_REDIRECTS} times")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _filename(url: str) -> str | None:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name[:255] or None


def guess_mimetype(filename: str | None, default: str) -> str:
    guessed = mimetypes.guess_type(filename or "")[0]
    return guessed or default

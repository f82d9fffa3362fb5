"""Media for outbound messages: base64 from the request, or a URL that wagate fetches itself.

A URL is fetched once, when the message is queued, through the SSRF guard (every resolved address checked, no
redirect to an internal one: redirects are followed by hand, each hop checked), within a time limit and a size limit
that stops reading at the limit. The engine never sees the URL (neonize would fetch it with no limit at all).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

from wagate import __version__
from wagate.errors import Unprocessable
from wagate.events.ssrf import BlockedAddress, check_url, connector_options

MAX_REDIRECTS = 3


@dataclass(frozen=True, slots=True)
class Media:
    data: bytes
    mimetype: str
    filename: str | None


class MediaError(Unprocessable):
    code = "media_unavailable"


def decode_base64(data: str, max_bytes: int) -> bytes:
    if len(data) > (max_bytes * 4) // 3 + 4:
        raise MediaError(f"the media is larger than {max_bytes} bytes", code="media_too_large")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("file.data is not valid base64", code="invalid_media") from None


class MediaFetcher:
    """Fetches media URLs with the guard, a timeout and a size limit. One per process (it keeps a connection pool)."""

    def __init__(self, *, max_bytes: int, timeout: float, allow_private: bool) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_private = allow_private
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

    async def fetch(self, url: str) -> Media:
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

"""A small HTTP/1.1 client for webhook deliveries: POST a body, read the status and headers, keep the connection.

Webhooks are many small POSTs to few endpoints, so the per-request cost is what matters: a general client (aiohttp)
spent about a third of the gateway's CPU on deliveries in bursts. This one does only what a delivery needs: one write
per request, responses framed by ``Content-Length``, chunked encoding or the end of the connection, keep-alive
connections per origin, TLS with the system's trust store, no redirects, no cookies, no proxies.

The SSRF guard sits where the connection is made: the host is resolved here, every address it resolves to is checked
(:func:`wagate.net.ssrf.refused`) and the connection goes to those checked addresses, so a DNS answer cannot
change between the check and the connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from wagate.net.ssrf import BlockedAddress, literal_address, refused

__all__ = ["IDLE_TIMEOUT", "KEPT_BODY", "MAX_BODY", "MAX_HEAD", "Answer", "Http1Client", "HttpError", "Target"]

IDLE_TIMEOUT = 30.0  # a kept connection unused this long is closed rather than reused (servers drop them)
MAX_HEAD = 64 * 1024  # status line and headers
MAX_BODY = 1024 * 1024  # a longer answer is not read to its end: the connection is closed instead
KEPT_BODY = 4096  # how much of the answer's body is kept (for the delivery's error text)
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"  # what stays as it is in the request line; spaces and controls are escaped


class HttpError(Exception):
    """The exchange failed: no connection, a broken answer, the connection closed mid-answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, parts: SplitResult) -> _Origin:
        if not parts.hostname or parts.scheme not in ("http", "https"):
            raise HttpError("not an http(s) URL with a host")
        try:
            host = parts.hostname if parts.hostname.isascii() else parts.hostname.encode("idna").decode("ascii")
            port = parts.port
        except (UnicodeError, ValueError) as exc:
            raise HttpError(f"the URL's host or port is not valid: {exc}") from None
        return cls(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


class _Reader(asyncio.Protocol):
    """One connection: parses one answer at a time into ``answer``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._answer: asyncio.Future[Answer] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._phase = "idle"  # idle, head, length, chunk-size, chunk-data, chunk-end, trailers, until-close
        self._remaining = 0
        self._body = bytearray()
        self._body_seen = 0
        self.reusable = False
        self.received_any = False
        self.idle_since = time.monotonic()
        self._keep = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if self._answer is not None and not self._answer.done():
            if self._phase == "until-close":
                self._finish(reusable=False)
            else:
                self._answer.set_exception(HttpError("the connection closed before the answer was complete"))

    def exchange(self, request: bytes, timeout: float | None = None) -> asyncio.Future[Answer]:
        """Send ``request``; the future answers it, or fails with ``TimeoutError`` after ``timeout`` seconds (one
        timer, not a task cancellation: the cheapest bound there is for one small POST after another)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._phase, self._status, self._headers = "head", 0, {}
        self._body, self._body_seen, self.received_any = bytearray(), 0, False
        if timeout is not None:
            self._timer = loop.call_later(timeout, self._time_out, timeout)
        self.transport.write(request)
        return self._answer

    def _time_out(self, timeout: float) -> None:
        self._timer = None
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(TimeoutError(f"no answer within {timeout:g}s"))
        if self.transport is not None:
            self.transport.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self._fail("the server sent data nobody asked for")  # cannot be framed: the connection is unusable
            return
        self.received_any = True
        self._buffer += data
        try:
            self._parse()
        except HttpError as exc:
            self._fail(str(exc))

    def _fail(self, why: str) -> None:
        self.reusable = False
        self._stop_timer()
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(HttpError(why))
        if self.transport is not None:
            self.transport.abort()

    def _parse(self) -> None:
        while self._answer is not None and not self._answer.done():
            if self._phase == "head":
                if not self._parse_head():
                    return
            elif self._phase == "length":
                if not self._take(self._remaining):
                    return
                self._finish(reusable=True)
            elif self._phase == "chunk-size":
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) > 1024:
                        raise HttpError("a malformed chunk size")
                    return
                size_text = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
                del self._buffer[: end + 2]
                try:
                    self._remaining = int(size_text, 16)
                except ValueError:
                    raise HttpError("a malformed chunk size") from None
                self._phase = "chunk-data" if self._remaining else "trailers"
            elif self._phase == "chunk-data":
                if not self._take(self._remaining):
                    return
                self._phase = "chunk-end"
            elif self._phase == "chunk-end":
                if len(self._buffer) < 2:
                    return
                if self._buffer[:2] != b"\r\n":
                    raise HttpError("a malformed chunk")
                del self._buffer[:2]
                self._phase = "chunk-size"
            elif self._phase == "trailers":
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return
                del self._buffer[: end + 2]
                if end == 0:
                    self._finish(reusable=True)
            elif self._phase == "until-close":
                self._take(len(self._buffer))
                return

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise HttpError("the answer's headers are too long")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status_line, _, rest = head.partition("\r\n")
        version, _, tail = status_line.partition(" ")
        code = tail[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise HttpError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in rest.split("\r\n") if rest else ():
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError("a malformed header line")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            return True
        self._status, self._headers = status, headers
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        self._keep = keep
        if status in (204, 304):
            self._finish(reusable=keep)
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._phase = "chunk-size"
        elif "content-length" in headers:
            try:
                self._remaining = int(headers["content-length"])
            except ValueError:
                raise HttpError("a malformed Content-Length") from None
            if self._remaining < 0:
                raise HttpError("a malformed Content-Length")
            self._phase = "length"
        else:
            self._keep = False
            self._phase = "until-close"
        return True

    def _take(self, wanted: int) -> bool:
        """Consume up to ``wanted`` body bytes from the buffer; True once all of them are in."""
        got = min(wanted, len(self._buffer))
        if got:
            if len(self._body) < KEPT_BODY:
                self._body += self._buffer[: min(got, KEPT_BODY - len(self._body))]
            del self._buffer[:got]
            self._body_seen += got
            if self._phase != "until-close":
                self._remaining -= got
        if self._body_seen > MAX_BODY:
            # Not worth reading to the end: deliver what we have and drop the connection.
            self._keep = False
            self._finish(reusable=False)
            if self.transport is not None:
                self.transport.abort()
            return False
        return got == wanted

    def _finish(self, *, reusable: bool) -> None:
        self._stop_timer()
        self.reusable = reusable and self._keep and not self._buffer and not self.closed
        self._phase = "idle"
        self.idle_since = time.monotonic()
        assert self._answer is not None
        if not self._answer.done():
            self._answer.set_result(Answer(self._status, self._headers, bytes(self._body)))


@dataclass(frozen=True, slots=True)
class Target:
    """A URL made ready for many POSTs: where to connect, and the fixed start of every request's head."""

    origin: _Origin
    head: bytes  # the request line, host and user-agent, each line ending in CRLF


class Http1Client:
    """Keep-alive HTTP/1.1 POSTs. ``allow_private`` lifts the SSRF guard; ``ssl_context`` replaces the system's
    trust (tests)."""

    def __init__(
        self, *, allow_private: bool, ssl_context: ssl.SSLContext | None = None, user_agent: str = "wagate"
    ) -> None:
        self.allow_private = allow_private
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._idle: dict[_Origin, deque[_Reader]] = {}
        self._closed = False

    def prepare(self, url: str) -> Target:
        """Parse ``url`` once for many requests; raises :class:`HttpError` when it is no http(s) URL with a host."""
        parts = urlsplit(url)
        origin = _Origin.of(parts)
        path = quote(parts.path or "/", safe=_PATH_SAFE) + (
            f"?{quote(parts.query, safe=_PATH_SAFE)}" if parts.query else ""
        )
        head = f"POST {path} HTTP/1.1\r\nhost: {origin.authority}\r\nuser-agent: {self._user_agent}\r\n"
        return Target(origin, head.encode("latin-1"))

    async def post(self, url: str, body: bytes, headers: dict[str, str], within: float | None = None) -> Answer:
        """One POST; raises :class:`HttpError`, :class:`BlockedAddress`, ``OSError`` or ``TimeoutError`` (after
        ``within`` seconds in all, when given; a timed-out or cancelled exchange's connection is dropped, never
        reused). A bound given here costs one timer, not a task cancellation scope."""
        return await self.send(self.prepare(url), body, headers, within)

    async def send(self, target: Target, body: bytes, headers: dict[str, str], within: float | None = None) -> Answer:
        """``post`` to a prepared target."""
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        request = target.head + f"{lines}content-length: {len(body)}\r\n\r\n".encode("latin-1") + body
        origin = target.origin
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        reader = self._reuse(origin)
        if reader is not None:
            try:
                return await self._exchange(origin, reader, request, within)
            except HttpError:
                if reader.received_any:
                    raise
                # The server closed the kept connection as we reused it (nothing came back): once more, on a new one.
        if deadline is None:
            fresh = await self._connect(origin)
        else:
            async with asyncio.timeout_at(deadline):
                fresh = await self._connect(origin)
        left = None if deadline is None else max(deadline - loop.time(), 0.001)
        return await self._exchange(origin, fresh, request, left)

    async def _exchange(self, origin: _Origin, reader: _Reader, request: bytes, within: float | None) -> Answer:
        try:
            answer = await reader.exchange(request, within)
        except BaseException:
            if reader.transport is not None:
                reader.transport.abort()
            raise
        if reader.reusable and not self._closed:
            self._idle.setdefault(origin, deque()).append(reader)
        elif reader.transport is not None:
            reader.transport.close()
        return answer

    def _reuse(self, origin: _Origin) -> _Reader | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            reader = idle.pop()  # the most recently used: the least likely to have been closed by the server
            if not reader.closed and now - reader.idle_since < IDLE_TIMEOUT:
                return reader
            if reader.transport is not None:
                reader.transport.close()
        return None

    async def _connect(self, origin: _Origin) -> _Reader:
        loop = asyncio.get_running_loop()
        addresses = await self._addresses(origin)
        tls = None
        if origin.scheme == "https":
            tls = self._ssl or _default_context()
        failure: OSError | None = None
        for family, address in addresses:
            try:
                _, reader = await loop.create_connection(
                    _Reader,
                    address,
                    origin.port,
                    family=family,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
                return reader
            except OSError as exc:
                failure = exc
        raise failure or OSError(f"{origin.host} has no address")

    async def _addresses(self, origin: _Origin) -> list[tuple[int, str]]:
        """Where to connect: the host's addresses, every one of them checked unless the guard is lifted (a name
        with one internal address is refused as a whole, so a rebinding DNS server cannot pick the one used)."""
        literal = literal_address(origin.host)
        if literal is not None:
            found: list[tuple[int, str]] = [(_family(literal), str(literal))]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                origin.host, origin.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
            found = []
            for family, _, _, _, sockaddr in infos:
                entry = (int(family), str(sockaddr[0]))
                if entry not in found:
                    found.append(entry)
        if not self.allow_private:
            for _, address in found:
                why = refused(origin.host, ipaddress.ip_address(address.split("%", 1)[0]))
                if why is not None:
                    raise BlockedAddress(why)
        return found

    def prune(self) -> None:
        """Close kept connections idle for longer than :data:`IDLE_TIMEOUT` (of endpoints no longer called)."""
        now = time.monotonic()
        for origin, idle in list(self._idle.items()):
            kept = deque(r for r in idle if not r.closed and now - r.idle_since < IDLE_TIMEOUT)
            for reader in idle:
                if reader not in kept and reader.transport is not None:
                    reader.transport.close()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for reader in idle:
                if reader.transport is not None:
                    reader.transport.close()
        self._idle.clear()


def _family(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return int(socket.AF_INET6 if address.version == 6 else socket.AF_INET)


_CONTEXT: ssl.SSLContext | None = None


def _default_context() -> ssl.SSLContext:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = ssl.create_default_context()
    return _CONTEXT

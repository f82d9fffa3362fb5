"""The webhook HTTP/1.1 client against real servers on loopback: framing, keep-alive, retries, TLS, the guard."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wagate.net.ssrf import BlockedAddress
from wagate.webhooks import http1
from wagate.webhooks.http1 import Http1Client, HttpError

Answerer = Callable[[int, bytes], bytes | None]  # (request number, raw request) -> raw answer, None: close


class Scripted:
    """A TCP server that reads whole requests (head and Content-Length body) and answers as scripted."""

    def __init__(self, answer: Answerer, *, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                raw = head + await reader.readexactly(length)
                self.requests.append(raw)
                out = self.answer(len(self.requests), raw)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
                if self.close_after_answer or b"\r\nconnection: close\r\n" in out.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(server: Scripted, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


def ok(body: bytes = b"ok", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_kept_connections_carry_many_requests_with_exact_framing() -> None:
    server = Scripted(lambda n, _: ok(f"answer {n}".encode()))
    client = Http1Client(allow_private=True, user_agent="wagate/test")
    async with serving(server) as port:
        answers = [
            await client.post(f"http://127.0.0.1:{port}/hook/a b?x=1", b'{"n":1}', {"x-a": "1"}) for _ in range(5)
        ]
    await client.close()
    assert [a.body for a in answers] == [f"answer {n}".encode() for n in range(1, 6)]
    assert {a.status for a in answers} == {200}
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook/a%20b?x=1 HTTP/1.1"
    assert {f"host: 127.0.0.1:{port}", "user-agent: wagate/test", "x-a: 1", "content-length: 7"} <= set(lines)
    assert body == b'{"n":1}'


async def test_chunked_answers_interim_answers_and_answers_ended_by_close() -> None:
    def answer(n: int, _: bytes) -> bytes:
        if n == 1:
            return b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after continue")
        if n == 2:
            chunks = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
            return b"HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n" + chunks
        return b"HTTP/1.1 500 Oops\r\nconnection: close\r\n\r\nuntil the end"

    server = Scripted(answer)
    client = Http1Client(allow_private=True)
    async with serving(server) as port:
        url = f"http://127.0.0.1:{port}/"
        first, second = await client.post(url, b"1", {}), await client.post(url, b"2", {})
        assert server.connections == 1  # both kept the connection
        third = await client.post(url, b"3", {})
        fourth = await client.post(url, b"4", {})  # the server closed after the third: a new connection
    await client.close()
    assert (first.status, first.body) == (200, b"after continue")
    assert (second.status, second.body) == (202, b"hello world")
    assert (third.status, third.body) == (500, b"until the end")
    assert fourth.status == 500
    assert server.connections == 2  # the first three on one connection, the fourth on a new one


async def test_a_kept_connection_closed_by_the_server_is_replaced_once_without_losing_the_request() -> None:
    # The server closes every connection after its answer without saying so: the client's kept connection is dead
    # when it is next used, and the request goes again on a new one.
    server = Scripted(lambda n, _: ok(str(n).encode()), close_after_answer=True)
    client = Http1Client(allow_private=True)
    async with serving(server) as port:
        url = f"http://127.0.0.1:{port}/"
        bodies = []
        for _ in range(3):
            bodies.append((await client.post(url, b"x", {})).body)
            await asyncio.sleep(0.05)  # let the close arrive, or not: both paths must work
    await client.close()
    assert bodies == [b"1", b"2", b"3"]
    assert server.connections == 3


async def test_broken_and_cut_answers_are_errors() -> None:
    def answer(n: int, _: bytes) -> bytes | None:
        if n == 1:
            return b"SPDY/3 200 nope\r\n\r\n"
        if n == 2:
            return b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"  # then the server closes
        return None

    server = Scripted(answer, close_after_answer=True)
    client = Http1Client(allow_private=True)
    async with serving(server) as port:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(HttpError, match=r"not an HTTP/1\.x answer"):
            await client.post(url, b"x", {})
        with pytest.raises(HttpError, match="closed before the answer was complete"):
            await client.post(url, b"x", {})
        with pytest.raises(HttpError, match="closed before the answer"):
            await client.post(url, b"x", {})  # closed with no answer at all on a new connection: no retry
    await client.close()
    assert server.connections == 3


async def test_a_huge_answer_is_cut_short_and_its_connection_dropped() -> None:
    big = b"x" * (http1.MAX_BODY + 10)
    server = Scripted(lambda n, _: ok(big) if n == 1 else ok(b"small"))
    client = Http1Client(allow_private=True)
    async with serving(server) as port:
        url = f"http://127.0.0.1:{port}/"
        first = await client.post(url, b"x", {})
        second = await client.post(url, b"x", {})
    await client.close()
    assert first.status == 200
    assert len(first.body) == http1.KEPT_BODY
    assert second.body == b"small"
    assert server.connections == 2


async def test_a_timed_out_exchange_never_returns_its_connection_to_the_pool() -> None:
    gate = asyncio.Event()

    class Slow(Scripted):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            await reader.readuntil(b"\r\n\r\n")
            await gate.wait()
            writer.write(ok(b"late"))  # would be read as the next request's answer if the connection were reused
            writer.close()

    server = Slow(lambda n, _: None)
    client = Http1Client(allow_private=True)
    async with serving(server) as port:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.post(f"http://127.0.0.1:{port}/", b"x", {})
        gate.set()
        assert client._reuse(http1._Origin("http", "127.0.0.1", port)) is None
    await client.close()


async def test_idle_connections_are_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Scripted(lambda n, _: ok())
    client = Http1Client(allow_private=True)
    async with serving(server) as port:
        await client.post(f"http://127.0.0.1:{port}/", b"x", {})
        client.prune()
        assert len(client._idle) == 1
        monkeypatch.setattr(http1, "IDLE_TIMEOUT", 0.0)
        client.prune()
        assert client._idle == {}
        await client.post(f"http://127.0.0.1:{port}/", b"x", {})
    await client.close()
    assert server.connections == 2


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "2130706433", "0x7f.1", "127.1"])
async def test_the_guard_refuses_internal_addresses_before_connecting(host: str) -> None:
    server = Scripted(lambda n, _: ok())
    client = Http1Client(allow_private=False)
    async with serving(server) as port:
        with pytest.raises(BlockedAddress):
            await client.post(f"http://{host}:{port}/", b"x", {})
    await client.close()
    assert server.connections == 0


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_https_verifies_the_server_against_the_trust_store(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    server = Scripted(lambda n, _: ok(b"secure"))
    async with serving(server, tls=server_tls) as port:
        url = f"https://localhost:{port}/hook"
        client = Http1Client(allow_private=True, ssl_context=trusting)
        assert (await client.post(url, b"x", {})).body == b"secure"
        assert (await client.post(url, b"x", {})).body == b"secure"
        await client.close()
        assert server.connections == 1
        system = Http1Client(allow_private=True)  # the system's trust store does not know this certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            await system.post(url, b"x", {})
        await system.close()

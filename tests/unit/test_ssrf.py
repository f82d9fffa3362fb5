"""The SSRF guard, against a real listener on loopback: with the guard on, no form of an internal address gets a
single connection through; with it lifted, the same client reaches the listener (so the test can fail)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from wagate.net.ssrf import BlockedAddress, check_url, literal_address, refusal
from wagate.webhooks.client import WebhookClient
from wagate.webhooks.http1 import Http1Client


class Listener:
    """A TCP listener on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(accepted, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    made = Listener()
    await made.start()
    yield made
    await made.stop()


def loopback_forms(port: int) -> list[str]:
    """Spellings that all reach the loopback listener when nothing stops them."""
    return [
        f"http://127.0.0.1:{port}/hook",
        f"http://127.1:{port}/",
        f"http://127.0.1:{port}/",
        f"http://2130706433:{port}/",  # decimal
        f"http://0x7f000001:{port}/",  # hexadecimal
        f"http://0x7f.0.0.1:{port}/",
        f"http://0177.0.0.1:{port}/",  # octal
        f"http://017700000001:{port}/",
        f"http://0177.1:{port}/",
        f"http://127.000.000.001:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",  # NAT64
        f"http://[2002:7f00:1::]:{port}/",  # 6to4
        f"http://localhost:{port}/",  # a name that resolves to loopback
        f"http://LOCALHOST:{port}/",
        f"http://127.0.0.1.:{port}/",
        f"http://0.0.0.0:{port}/",  # unspecified: Linux connects it to the local host
        f"http://0:{port}/",
        f"https://127.0.0.1:{port}/",
    ]


OTHER_INTERNAL = [
    "http://[::1]/",
    "http://[::]/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://169.254.170.2/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.1.1/",  # link-local
    "http://[fe80::1]/",
    "http://224.0.0.1/",  # multicast
    "http://[ff02::1]/",
    "http://[fc00::1]/",  # unique local
    "http://100.64.0.1/",  # shared address space (CGNAT)
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://0xa9fea9fe/",  # 169.254.169.254 in hexadecimal
    "http://2852039166/",  # ... and in decimal
]


@pytest.fixture
async def guarded() -> AsyncIterator[WebhookClient]:
    client = WebhookClient(timeout=3, allow_private=False, concurrency=10)
    yield client
    await client.close()


async def test_no_internal_form_gets_a_connection(listener: Listener, guarded: WebhookClient) -> None:
    forms = loopback_forms(listener.port) + OTHER_INTERNAL
    assert len(forms) >= 40
    for url in forms:
        attempt = await guarded.post(url, b"{}", {}, now=0)
        assert not attempt.ok, url
        assert attempt.refused, (url, attempt)
        assert attempt.error.startswith("address_refused: "), (url, attempt.error)
    assert listener.connections == 0


async def test_the_same_client_connects_when_the_guard_is_lifted(listener: Listener) -> None:
    client = WebhookClient(timeout=3, allow_private=True, concurrency=10)
    try:
        for url in (f"http://127.0.0.1:{listener.port}/", f"http://localhost:{listener.port}/"):
            attempt = await client.post(url, b"{}", {}, now=0)
            assert attempt.ok, (url, attempt)
    finally:
        await client.close()
    assert listener.connections == 2


async def test_redirects_are_not_followed() -> None:
    target = Listener()
    await target.start()
    redirector = web.Application()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{target.port}/internal")

    redirector.router.add_post("/hook", redirect)
    runner = web.AppRunner(redirector)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = WebhookClient(timeout=3, allow_private=True, concurrency=10)  # the guard lifted to reach the redirector
    try:
        attempt = await client.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, now=0)
    finally:
        await client.close()
        await runner.cleanup()
        await target.stop()
    assert (attempt.ok, attempt.status) == (False, 302)
    assert target.connections == 0


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2001:4860:4860::8888", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("hooks.example.com", None),
    ],
)
def test_literal_spellings(host: str, expected: str | None) -> None:
    found = literal_address(host)
    assert (str(found) if found else None) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http:///nohost",
        "http://user:pw@example.com/",
        "http://example.com:99999/",
        "example.com/hook",
    ],
)
def test_bad_shapes_are_refused_even_with_the_guard_lifted(url: str) -> None:
    with pytest.raises(BlockedAddress):
        check_url(url, allow_private=True)


def test_public_urls_are_accepted() -> None:
    assert check_url("https://hooks.example.com/wagate?x=1", allow_private=False) == "hooks.example.com"
    assert check_url("http://8.8.8.8:8080/", allow_private=False) == "8.8.8.8"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/", "the URL's host 127.0.0.1 is a loopback address"),
        ("http://2130706433/", "the URL's host 2130706433 is 127.0.0.1, a loopback address"),
        ("http://[::ffff:10.0.0.5]/", "the URL's host ::ffff:10.0.0.5 is an IPv6 form of 10.0.0.5 (a private address)"),
    ],
)
def test_a_refusal_names_the_address(url: str, why: str) -> None:
    with pytest.raises(BlockedAddress) as refused:
        check_url(url, allow_private=False)
    assert str(refused.value) == why


async def test_a_refused_name_says_what_it_resolves_to(listener: Listener) -> None:
    http = Http1Client(allow_private=False)
    try:
        with pytest.raises(BlockedAddress) as refused:
            await http.post(f"http://localhost:{listener.port}/", b"{}", {})
    finally:
        await http.close()
    assert str(refused.value) == "localhost resolves to 127.0.0.1, a loopback address"
    assert listener.connections == 0

"""The SSRF guard: a webhook (or a media URL) may reach the public internet only.

Checked at delivery time, on the addresses actually connected to: the URL's host is resolved by the client that
connects (:class:`wagate.webhooks.http1.Http1Client` for webhooks, :class:`wagate.net.resolver.GuardedResolver` in
aiohttp for media) and
refused when any address it resolves to is loopback, private, link-local, multicast,
reserved, unspecified, shared (CGNAT) or a cloud metadata address, including IPv4 embedded in IPv6 (mapped, NAT64,
6to4, Teredo). IP literals never reach a resolver, so :func:`check_url` refuses them itself, in every spelling
(``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``). Redirects are not followed by the callers.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from wagate.errors import WagateError

__all__ = [
    "BlockedAddress",
    "IPAddress",
    "check_url",
    "literal_address",
    "refusal",
    "refused",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}


class BlockedAddress(WagateError):
    """The URL points at an address the guard refuses."""


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached, or None when it is a public unicast address."""
    if address in _METADATA:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal(embedded)
            return f"an IPv6 form of {embedded} ({inner})" if inner else None
    for test, why in (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    ):
        if test:
            return why
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:  # IPv4-compatible (deprecated ::a.b.c.d)
        return ipaddress.IPv4Address(packed[12:])
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling the C library accepts; None for a name."""
    bare = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    try:  # inet_aton's legacy forms: 2130706433, 0x7f000001, 0177.0.0.1, 127.1
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def refused(host: str, address: IPAddress) -> str | None:
    """Why ``host`` may not be reached at ``address`` (one it names literally or resolves to), naming both, or None
    when the address is public: what a refusal reports (``localhost resolves to 127.0.0.1, a loopback address``)."""
    why = refusal(address)
    if why is None:
        return None
    if literal_address(host) is None:
        return f"{host} resolves to {address}, {why}"
    shown = host.strip("[]")
    try:
        ipaddress.ip_address(shown.split("%", 1)[0])
        spelled = ""
    except ValueError:  # a legacy spelling: 2130706433 is 127.0.0.1, a loopback address
        spelled = f" {address},"
    return f"the URL's host {shown} is{spelled} {why}"


def check_url(url: str, *, allow_private: bool) -> str:
    """Validate a webhook or media URL's shape (http or https, a host, no credentials) and, with the guard on,
    refuse a literal internal address. Returns the host. Names are checked when they are resolved."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedAddress("the URL must start with http:// or https://")
    if not parts.hostname:
        raise BlockedAddress("the URL has no host")
    if parts.username or parts.password:
        raise BlockedAddress("the URL must not carry credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BlockedAddress("the URL's port is not valid") from None
    if not allow_private:
        address = literal_address(parts.hostname)
        why = refused(parts.hostname, address) if address is not None else None
        if why is not None:
            raise BlockedAddress(why)
    return parts.hostname

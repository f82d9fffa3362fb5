"""HTTP to the servers the tests start on loopback, every client sharing one TLS context.

httpx makes a TLS context for each client it builds, ``httpx.get`` and ``httpx.post`` included, and loads certifi's
bundle into it: about 40 ms of CPU each time. The tests' polling loops (a status awaited every 20 ms, a process
awaited until it answers) paid that on every turn, which was most of the CPU the end-to-end tests spent in the test
process. The context here is the one httpx makes by default, made once.
"""

from __future__ import annotations

import ssl
from typing import Any

import certifi
import httpx

__all__ = ["TLS", "async_client", "client", "get", "patch", "post", "request"]

TLS = ssl.create_default_context(cafile=certifi.where())


def client(**options: Any) -> httpx.Client:
    return httpx.Client(verify=TLS, **options)


def async_client(**options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=TLS, **options)


def request(method: str, url: str, **options: Any) -> httpx.Response:
    return httpx.request(method, url, verify=TLS, **options)


def get(url: str, **options: Any) -> httpx.Response:
    return httpx.get(url, verify=TLS, **options)


def post(url: str, **options: Any) -> httpx.Response:
    return httpx.post(url, verify=TLS, **options)


def patch(url: str, **options: Any) -> httpx.Response:
    return httpx.patch(url, verify=TLS, **options)

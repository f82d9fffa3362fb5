"""The HTTP side of the metrics: each request's latency by route, and the totals the server status reports."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Histogram
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["LATENCY_BUCKETS", "HttpMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """Counts what one app answers, into the registry of the node that serves it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.http = Histogram(
            "wagate_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = 0
        self.errors = 0  # answers >= 500
        self.request_seconds = 0.0

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"  # the template: no ids in label values
            self.http.labels(request.method, template, str(status)).observe(elapsed)
            self.requests += 1
            self.errors += status >= 500
            self.request_seconds += elapsed

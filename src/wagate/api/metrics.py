"""The HTTP side of the metrics: each request's latency by route, and the totals the server status reports."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LATENCY_BUCKETS", "HttpMetrics", "MeasuredRequests"]

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
        self._children: dict[tuple[str, str, int], Histogram] = {}  # the histogram's labelled children, looked up
        self.requests = 0
        self.errors = 0  # answers >= 500
        self.request_seconds = 0.0

    def observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        child = self._children.get((method, route, status))
        if child is None:
            child = self._children[method, route, status] = self.http.labels(method, route, str(status))
        child.observe(elapsed)
        self.requests += 1
        self.errors += status >= 500
        self.request_seconds += elapsed


class MeasuredRequests:
    """The middleware that times every HTTP request into ``metrics``: a pure ASGI one (Starlette's
    ``BaseHTTPMiddleware`` runs each request in a task group of its own, with streams between it and the app, and cost
    more than a small route itself)."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"  # the template: no ids in label values
            self._metrics.observe(scope["method"], template, status, time.perf_counter() - started)

"""Prometheus metrics for the control plane: request latency by route, and jobs by state at scrape time."""

from __future__ import annotations

import time

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmforge.platform.db import session_scope
from llmforge.platform.models import Job
from llmforge.settings import Settings


class _JobCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self):  # noqa: ANN201 - prometheus collector protocol
        g = GaugeMetricFamily("llmforge_jobs", "Jobs by status, kind and queue", labels=["status", "kind", "queue"])
        with session_scope(self.settings.database_url) as s:
            for st, kind, q, n in s.execute(select(Job.status, Job.kind, Job.queue, func.count()).group_by(Job.status, Job.kind, Job.queue)):
                g.add_metric([st, kind, q], n)
        yield g


class Metrics:
    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "llmforge_http_request_seconds", "API request latency", ["method", "route", "status"],
            registry=self.registry, buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.registry.register(_JobCollector(settings))

    def middleware(self) -> type:
        """A pure ASGI middleware (BaseHTTPMiddleware costs a task group per request and buffers streams)."""
        latency = self.latency

        class _Timing:
            def __init__(self, app: ASGIApp) -> None:
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                t0 = time.perf_counter()
                status = 500

                async def send_status(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                try:
                    await self.app(scope, receive, send_status)
                finally:
                    # routing writes the matched route into this same scope dict
                    path = getattr(scope.get("route"), "path", "unmatched")
                    latency.labels(scope["method"], path, str(status)).observe(time.perf_counter() - t0)

        return _Timing

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

"""The app's registry and the instruments that count events as they happen."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram,
                               PlatformCollector, ProcessCollector)

from gpuctl_async.metrics.kube import KubeRequestMetrics

# Request latencies of a cache-served API: most answers take milliseconds.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Everything ``/metrics`` serves for one app."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.http_requests = Counter(
            "gpuctl_http_requests", "HTTP requests answered, by route template, method and "
            "status class (2xx, 4xx...)", ("route", "method", "status_class"), registry=registry)
        self.http_duration = Histogram(
            "gpuctl_http_request_duration_seconds", "Time to answer an HTTP request, by route "
            "template (WebSocket sessions are not included)", ("route",),
            buckets=HTTP_BUCKETS, registry=registry)
        self.http_in_flight = Gauge(
            "gpuctl_http_requests_in_flight", "HTTP requests being answered now (open "
            "WebSockets included)", registry=registry)
        self.http_request_bytes = Counter(
            "gpuctl_http_request_bytes", "Request body bytes received (Content-Length), by "
            "route template", ("route",), registry=registry)
        self.http_response_bytes = Counter(
            "gpuctl_http_response_bytes", "Response body bytes sent, by route template "
            "(WebSocket frames are counted by their own metrics)", ("route",),
            registry=registry)
        self.kube = KubeRequestMetrics(registry)


METRICS = web.AppKey("metrics", Metrics)

"""The app's registry: the client library's process, platform and GC collectors, the HTTP
and Kubernetes request metrics, and (``setup_metrics``) the scrape-time state collector."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (CollectorRegistry, GCCollector, PlatformCollector,
                               ProcessCollector)

from gpuctl_async.metrics.httpstats import HttpStats
from gpuctl_async.metrics.kube import KubeRequestMetrics


class Metrics:
    """Everything ``/metrics`` serves for one app."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.http = HttpStats()
        registry.register(self.http)
        self.kube = KubeRequestMetrics(registry)


METRICS = web.AppKey("metrics", Metrics)

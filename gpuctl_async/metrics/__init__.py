"""Prometheus metrics at ``GET /metrics``, with the official client library.

- ``registry``: one :class:`~prometheus_client.CollectorRegistry` per app (tests build many
  apps in one process), holding the client library's process, platform and GC collectors.
- ``httpstats``: requests by route *template*, method and status class (a raw path, a job
  name or a user name is never a label), told by the request-id middleware (no middleware
  layer of its own), kept as plain numbers (one slot per route, method and status, one dict
  lookup a request) exposed at scrape time: ~2 us a request, against ~14 us for a Counter
  and a Histogram.
- ``http``: the ``/metrics`` view, which answers OpenMetrics when the scraper asks for it;
  with authentication on, the auth middleware first requires ``get`` on the non-resource
  URL ``/metrics`` (a SubjectAccessReview, as kube-rbac-proxy).
- ``kube``: each Kubernetes API request by verb, resource and code (``KubeClient`` calls it).
- ``collectors``: what can be read when Prometheus scrapes rather than counted in the code
  (caches, log streams, sockets, auth caches, readiness): the counters those parts keep for
  themselves are read there, so they need no knowledge of Prometheus.

``metrics: false`` (setting) leaves all of it out: no observer, no route, no counting.
"""

from __future__ import annotations

from aiohttp import web

from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.metrics.collectors import StateCollector
from gpuctl_async.metrics.http import METRICS_PATH, metrics_view
from gpuctl_async.metrics.kube import KubeRequestMetrics
from gpuctl_async.metrics.registry import METRICS, Metrics
from gpuctl_async.requestids import REQUEST_OBSERVER

__all__ = ["METRICS", "METRICS_PATH", "Metrics", "kube_observer", "setup_metrics"]


def setup_metrics(app: web.Application) -> None:
    """Call in ``create_app``; ``setup_request_ids`` must be called too: its middleware (the
    outermost) reports every request, answered by any middleware or handler."""
    if not app[SETTINGS].metrics:
        return
    metrics = app[METRICS] = Metrics()
    metrics.registry.register(StateCollector(app))
    app[REQUEST_OBSERVER] = metrics.http
    app.router.add_get(METRICS_PATH, metrics_view)


def kube_observer(app: web.Application) -> KubeRequestMetrics | None:
    """What ``KubeClient`` reports each request to (None with metrics off)."""
    metrics = app.get(METRICS)
    return metrics.kube if metrics is not None else None

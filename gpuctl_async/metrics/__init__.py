"""Prometheus metrics at ``GET /metrics``, with the official client library.

- ``registry``: one :class:`~prometheus_client.CollectorRegistry` per app (tests build many
  apps in one process), holding the client library's process, platform and GC collectors.
- ``http``: the middleware counting requests by route *template*, method and status class
  (a raw path, a job name or a user name is never a label) into ``httpstats`` (plain
  numbers exposed at scrape time: ~2 us a request, against ~14 us for a Counter and a
  Histogram), and the ``/metrics`` view, which answers OpenMetrics when the scraper asks for
  it; with authentication on, the auth middleware first requires ``get`` on the
  non-resource URL ``/metrics`` (a SubjectAccessReview, as kube-rbac-proxy).
- ``kube``: each Kubernetes API request by verb, resource and code (``KubeClient`` calls it).
- ``collectors``: what can be read when Prometheus scrapes rather than counted in the code
  (caches, log streams, sockets, auth caches, readiness): the counters those parts keep for
  themselves are read there, so they need no knowledge of Prometheus.

``metrics: false`` (setting) leaves all of it out: no middleware, no route, no counting.
"""

from __future__ import annotations

from aiohttp import web

from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.metrics.collectors import StateCollector
from gpuctl_async.metrics.http import METRICS_PATH, http_metrics_middleware, metrics_view
from gpuctl_async.metrics.kube import KubeRequestMetrics
from gpuctl_async.metrics.registry import METRICS, Metrics

__all__ = ["METRICS", "METRICS_PATH", "Metrics", "kube_observer", "setup_metrics"]


def setup_metrics(app: web.Application) -> None:
    """Call early in ``create_app`` (after ``setup_request_ids``): the middleware goes
    outside the error, rate-limit and auth middlewares so that every answer is counted."""
    if not app[SETTINGS].metrics:
        return
    metrics = app[METRICS] = Metrics()
    metrics.registry.register(StateCollector(app))
    app.middlewares.append(http_metrics_middleware)
    app.router.add_get(METRICS_PATH, metrics_view)


def kube_observer(app: web.Application) -> KubeRequestMetrics | None:
    """What ``KubeClient`` reports each request to (None with metrics off)."""
    metrics = app.get(METRICS)
    return metrics.kube if metrics is not None else None

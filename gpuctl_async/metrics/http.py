"""Counting HTTP requests, and serving ``/metrics``."""

from __future__ import annotations

import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp_apigami import docs
from prometheus_client.exposition import choose_encoder

from gpuctl_async.api.openapi import error_responses
from gpuctl_async.metrics.registry import METRICS
from gpuctl_async.requestids import REQUEST_CONTEXT
from gpuctl_async.requestids.middleware import route_template

METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    stats = request.app[METRICS].http
    stats.in_flight += 1
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        stats.in_flight -= 1
        context = request.get(REQUEST_CONTEXT)
        route = context.route if context is not None else route_template(request)
        stats.observe(route, request.method if request.method in _METHODS else "OTHER",
                      _STATUS_CLASSES.get(status // 100, "other"),
                      # a WebSocket's time is its session's length, not a latency
                      elapsed if status != 101 else None,
                      request.content_length or 0, _body_bytes(response))


def _body_bytes(response: web.StreamResponse | None) -> int:
    if response is None or isinstance(response, web.WebSocketResponse):
        return 0
    if response.prepared:
        return response.body_length  # streamed by the handler
    body = getattr(response, "body", None)
    return len(body) if isinstance(body, (bytes, bytearray)) else 0


@docs(tags=["meta"], summary="Prometheus metrics",
      description="The service's metrics in the Prometheus text format, or OpenMetrics when "
                  "the `Accept` header asks for `application/openmetrics-text`. Names, labels "
                  "and alerts: README \"Operating it\", `config/prometheus/`.",
      responses={200: {"description": "Metrics in the text exposition format",
                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                 **error_responses(rate_limited=True)})
async def metrics_view(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get(hdrs.ACCEPT, ""))
    body = encoder(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.headers[hdrs.CONTENT_TYPE] = content_type
    return response

"""Serving ``/metrics``."""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp_apigami import docs
from prometheus_client.exposition import choose_encoder

from gpuctl_async.api.openapi import error_responses
from gpuctl_async.metrics.registry import METRICS

METRICS_PATH = "/metrics"

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

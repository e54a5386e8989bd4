"""Liveness and readiness probes answered past the middleware chain.

kubelet, load balancers and uptime checks ask ``/health`` and ``/ready`` of every replica
many times a second, and the answers must stay cheap however busy the replica is. Both are
open (no token), never rate-limited, carry no body and no consistency token, and have no
parameters to validate, so of the middlewares between the request id and the handler only
the error envelope applies to them. :func:`probe_middleware` therefore hands a request for
a :func:`probe` route straight to the error middleware and the handler: walking the CORS,
rate-limit, authentication, consistency, large-body and validation layers cost each probe
about a sixth of its CPU time (``bench/jobs_read.py --load wrk``: ``/health`` against a
bare aiohttp handler).

What a probe keeps: the request-id middleware stays outermost (the ``X-Request-ID`` header,
log lines, and the metrics count every probe), ``on_response_prepare`` hooks still run
(CORS headers on the answer), and a method the route does not take is still the router's
405 through the whole chain (the router's match is no probe route then).
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from gpuctl_async.middleware import error_middleware

_PROBE = "__gpuctl_probe__"
H = TypeVar("H")


def probe(handler: H) -> H:
    """Mark a route handler as a probe: answered past the middlewares (see the module)."""
    setattr(handler, _PROBE, True)
    return handler


@web.middleware
async def probe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route_handler = request.match_info.handler
    if getattr(route_handler, _PROBE, False):
        return await error_middleware(request, route_handler)
    return await handler(request)


def setup_probes(app: web.Application) -> None:
    """Call right after ``setup_request_ids`` and ``setup_metrics``: the middleware goes
    right inside the request-id one, before every other."""
    app.middlewares.append(probe_middleware)

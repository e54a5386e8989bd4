"""The rate-limit middleware: 429 with ``Retry-After`` once a client address is over its rate.

The client address is the TCP peer (``request.remote``). ``X-Forwarded-For`` is not read: any
client can write it, so trusting it would let every request pick its own bucket. Behind a
proxy or load balancer all its clients therefore share one bucket; size the limits for it, or
set ``rate_limit_per_second: 0`` and limit at the proxy.

``/health`` and ``/ready`` are not limited: kubelet probes them from the node's address, and a
busy client on the same node must not get the pod restarted or taken out of its Service.
"""

from __future__ import annotations

import math

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gpuctl_async.api.responses import json_response
from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.passthrough import PassThrough, answered
from gpuctl_async.ratelimit.buckets import TokenBuckets

UNLIMITED_PATHS = frozenset({"/health", "/ready"})
# request.remote is None on some transports (e.g. a Unix socket): those share one bucket.
UNKNOWN_CLIENT = "unknown"

RATE_BUCKETS = web.AppKey("rate_buckets", TokenBuckets)
"""The buckets, for what costs like a request without being one (absent when unlimited):
each ``subscribe`` on the multiplexed socket."""


def client_key(request: web.Request) -> str:
    return request.remote or UNKNOWN_CLIENT


def rate_limit_middleware(buckets: TokenBuckets):
    @web.middleware
    def rate_limit(request: web.Request, handler: Handler) -> PassThrough:
        if request.path not in UNLIMITED_PATHS:
            wait = buckets.take(client_key(request))
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                return answered(json_response(
                    {"error": f"Too many requests from this address; retry in {retry_after} s"},
                    status=429, headers={hdrs.RETRY_AFTER: str(retry_after)}))
        return handler(request)  # a pass-through: no frame held for a socket's life

    return rate_limit


def setup_rate_limit(app: web.Application) -> None:
    """Append the limiter to the app's middlewares (after error handling, before
    authentication, so that a flood never costs a TokenReview); no-op when the rate is 0."""
    settings = app[SETTINGS]
    if settings.rate_limit_per_second > 0:
        buckets = app[RATE_BUCKETS] = TokenBuckets(settings.rate_limit_per_second,
                                                    settings.rate_limit_burst)
        app.middlewares.append(rate_limit_middleware(buckets))

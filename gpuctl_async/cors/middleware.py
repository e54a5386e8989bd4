"""CORS for the origins in ``cors_origins``, and the Origin check on WebSocket upgrades.

Off by default: with no origins listed, no response carries an ``Access-Control-*`` header,
so browsers keep other sites' pages from reading the API. Headers are added in
``on_response_prepare`` rather than around the handler, so every answer gets them — errors,
429s and 401s included (a page must be able to read why it was refused).

WebSockets are not covered by CORS: a browser opens one from any page, so the upgrade itself
is refused (403, before any handler runs) when its ``Origin`` is neither the server's own nor
listed. Clients that send no ``Origin`` (CLIs, scripts) are not browsers and pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gpuctl_async.api.responses import json_response
from gpuctl_async.cors.origins import OriginError, is_own_origin, normalise_origin
from gpuctl_async.passthrough import PassThrough, answered

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
# Authorization carries the bearer token; Content-Type: application/json is not "simple";
# a page may send its own X-Request-ID; X-Consistency-Token asks a replica to catch up with an
# earlier write.
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-ID, X-Consistency-Token"
# Readable by the page beyond the CORS-safelisted ones: how long to back off, how to log in,
# the request id to quote in a bug report, the token of a write.
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate, X-Request-ID, X-Consistency-Token"
PREFLIGHT_MAX_AGE = "600"


def _listed(origin: str | None, allowed: frozenset[str]) -> str | None:
    """The origin as given, if it is one of ``allowed``."""
    if not origin or not allowed:
        return None
    try:
        return origin if normalise_origin(origin) in allowed else None
    except OriginError:
        return None  # "null" (sandboxed frames, file://) and other junk: never listed


def _origin_middleware(allowed: frozenset[str]):
    @web.middleware
    def origin_middleware(request: web.Request, handler: Handler) -> PassThrough:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            if not (_listed(origin, allowed)
                    or is_own_origin(origin, request.headers.get(hdrs.HOST))):
                return answered(json_response(
                    {"error": f"WebSocket connections from origin '{origin}' are not allowed"},
                    status=403))
        if (request.method == hdrs.METH_OPTIONS
                and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
                and _listed(origin, allowed)):
            return answered(web.Response(status=204, headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE,
            }))  # Allow-Origin and Vary are added on prepare, as for every answer
        return handler(request)  # a pass-through: no frame held for a socket's life

    return origin_middleware


def _cors_headers(allowed: frozenset[str]):
    async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
        vary = response.headers.get(hdrs.VARY)
        if not vary or "origin" not in vary.lower():
            response.headers[hdrs.VARY] = f"{vary}, Origin" if vary else "Origin"
        origin = _listed(request.headers.get(hdrs.ORIGIN), allowed)
        if origin is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS

    return add_cors_headers


def setup_cors(app: web.Application, origins: Iterable[str]) -> None:
    """Install the Origin middleware; call it before any other middleware is added, so that
    preflights and foreign WebSocket upgrades are answered before rate limits and
    authentication (a preflight carries no token)."""
    allowed = frozenset(normalise_origin(origin) for origin in origins)
    app.middlewares.append(_origin_middleware(allowed))
    if allowed:
        app.on_response_prepare.append(_cors_headers(allowed))

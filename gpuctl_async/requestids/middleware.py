"""The request-id middleware, and :func:`prepare` for answers a handler sends itself.

The middleware is the request's outermost scope, so it also tells an optional
:class:`RequestObserver` (the metrics) when each request starts and ends: a middleware layer
of its own would cost every request about 3 us more (aiohttp wraps each one per request).

The header is put on the answer the handler returns, before aiohttp sends it. An
``on_response_prepare`` hook would reach every answer by itself, but costs each request a
signal and a coroutine (~5 % of a job page's CPU time); only answers a handler prepares
itself (WebSockets, streams) need one, and they go through :func:`prepare`.
"""

from __future__ import annotations

import time
from typing import Protocol

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gpuctl_async.requestids.context import CURRENT, HEADER, RequestContext, request_id


class RequestObserver(Protocol):
    def started(self) -> None: ...

    def finished(self, request: web.Request, route: str, status: int,
                 response: web.StreamResponse | None, seconds: float) -> None:
        """``response`` None: the handler raised (``status``: the exception's, else 500)."""


REQUEST_OBSERVER = web.AppKey("request_observer", RequestObserver)

REQUEST_CONTEXT = "gpuctl_request_context"
"""Request key of the :class:`RequestContext` (the access log reads it after the
middlewares have returned and :data:`CURRENT` is reset)."""

UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    """The matched route's template, bounded whatever the path: ``unmatched`` otherwise."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    context = RequestContext(request_id(request.headers.get(HEADER)), route_template(request))
    request[REQUEST_CONTEXT] = context
    observer = request.app.get(REQUEST_OBSERVER)
    if observer is not None:
        observer.started()
    started = time.perf_counter()
    status, response = 500, None
    token = CURRENT.set(context)
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        CURRENT.reset(token)
        if observer is not None:
            observer.finished(request, context.route, status, response,
                              time.perf_counter() - started)
    if not response.prepared:
        response.headers[HEADER] = context.id
        if response.status >= 400:
            _add_to_error_body(response, context.id)
    return response


def _add_to_error_body(response: web.StreamResponse, rid: str) -> None:
    """``{"error": ...}`` bodies gain ``requestId``; other bodies are left alone."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return
    body = response.body
    if not isinstance(body, bytes):
        return
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(data, dict) and "error" in data and "requestId" not in data:
        data["requestId"] = rid
        response.body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


async def prepare(response: web.StreamResponse, request: web.Request) -> None:
    """``await response.prepare(request)``, with the ``X-Request-ID`` header: for every
    answer a handler sends before returning it (a WebSocket upgrade, a stream), which the
    middleware only sees once it has gone."""
    context = request.get(REQUEST_CONTEXT)
    if context is not None:
        response.headers[HEADER] = context.id
    await response.prepare(request)

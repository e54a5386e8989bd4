"""``WS /api/v1/jobs-feed/ws``: a live job list for dashboards.

The first frame is ``{"type": "snapshot", "items": [JobItem...]}``: what ``GET /api/v1/jobs``
would list with the same filters (with authentication on: the namespaces where the caller may
list pods, checked again before each batch of changes; a named namespace the caller may not
read gets an error frame and close code 4403). Then ``{"type": "ADDED"|"MODIFIED"|"DELETED", "item":
JobItem}`` as jobs change. Bursts are coalesced: a job's changes within one window are sent as
its latest state, so a client gets at most one frame per job per window. Pings keep idle
connections alive through proxies; on shutdown the socket closes with 1001 (going away).

This is a WebSocket: Swagger UI's "Try it out" cannot open one, and a plain GET answers 400.
Connect with a WebSocket client, e.g.
``websocat 'ws://localhost:8000/api/v1/jobs-feed/ws?kind=training'``, or in a browser
``new WebSocket("ws://" + location.host + "/api/v1/jobs-feed/ws")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp_apigami import docs, querystring_schema
from marshmallow import Schema, fields, validate

from gpuctl_async import requestids
from gpuctl_async.api.job_views import JobItemSchema
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.paths import JOB_FEED_PATH
from gpuctl_async.api.responses import dumps, require_websocket
from gpuctl_async.appkeys import LISTING
from gpuctl_async.auth import SUBPROTOCOL
from gpuctl_async.auth.guard import CLOSE_FORBIDDEN, read_scope
from gpuctl_async.auth.permissions import LIST_PODS
from gpuctl_async.documents import JOB_KINDS
from gpuctl_async.errors import Forbidden, GpuctlError
from gpuctl_async.jobs.feed import FeedStats, JobFeed

HEARTBEAT_SECONDS = 25.0
FEED_SOCKETS = web.AppKey("job_feed_sockets", weakref.WeakSet)
FEED_STATS = web.AppKey("job_feed_stats", FeedStats)
"""Counts of every job feed: these sockets' and the multiplexed socket's subscriptions."""


class JobFeedQuerySchema(Schema):
    namespace = fields.String(metadata={"description": "Only jobs in this namespace"})
    kind = fields.String(validate=validate.OneOf(JOB_KINDS),
                         metadata={"description": "Only jobs of this kind"})
    pool = fields.String(metadata={"description": "Only jobs in this resource pool"})


class JobFeedFrameSchema(Schema):
    type = fields.String(required=True, metadata={
        "description": "snapshot, ADDED, MODIFIED or DELETED"})
    items = fields.List(fields.Nested(JobItemSchema), metadata={"description": "snapshot only"})
    item = fields.Nested(JobItemSchema, metadata={"description": "ADDED/MODIFIED/DELETED"})


@docs(tags=["jobs"], summary="Live job list (WebSocket)",
      description=__doc__,
      responses={101: json_content(JobFeedFrameSchema, "WebSocket; each frame is JSON"),
                 **error_responses(400, 503)})
@querystring_schema(JobFeedQuerySchema)
async def job_feed(request: web.Request) -> web.WebSocketResponse:
    filters = {k: v for k, v in request["querystring"].items() if v}
    listing = request.app[LISTING]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, protocols=(SUBPROTOCOL,))
    require_websocket(ws, request)  # a plain GET is told to upgrade, whatever the caches say
    listing.require_synced()  # a 503 must come before the upgrade
    await requestids.prepare(ws, request)
    request.app[FEED_SOCKETS].add(ws)

    async def scope() -> frozenset[str] | None:
        return await read_scope(request, LIST_PODS, filters.get("namespace"))

    async def send(kind: str, frame: bytes) -> None:
        await ws.send_frame(frame, WSMsgType.TEXT)  # JSON already: no str round trip

    async def follow() -> None:
        try:
            await JobFeed(listing, filters, scope, stats=request.app[FEED_STATS]).run(send)
        except GpuctlError as exc:  # refused (4403), or the check failed (1011)
            code = CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else WSCloseCode.INTERNAL_ERROR
            await ws.send_frame(dumps({"type": "error", "data": exc.message}), WSMsgType.TEXT)
            await ws.close(code=code, message=exc.message.encode()[:120])

    sender = asyncio.create_task(follow(), name="job feed")
    try:
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await sender
        request.app[FEED_SOCKETS].discard(ws)
    return ws


async def _close_feeds(app: web.Application) -> None:
    for ws in list(app[FEED_SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def setup_job_feed_routes(app: web.Application) -> None:
    app[FEED_SOCKETS] = weakref.WeakSet()
    app[FEED_STATS] = FeedStats()
    app.on_shutdown.append(_close_feeds)
    app.router.add_get(JOB_FEED_PATH, job_feed)

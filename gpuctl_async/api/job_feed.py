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
import time
import weakref
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp_apigami import docs, querystring_schema
from marshmallow import Schema, fields, validate

from gpuctl_async.api.job_views import JobItemSchema
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.paths import JOB_FEED_PATH
from gpuctl_async.api.responses import dumps, require_websocket
from gpuctl_async.appkeys import LISTING
from gpuctl_async.auth import SUBPROTOCOL
from gpuctl_async.auth.guard import CLOSE_FORBIDDEN, read_scope
from gpuctl_async.auth.permissions import LIST_PODS
from gpuctl_async.errors import Forbidden, GpuctlError
from gpuctl_async.jobs.listing import Row
from gpuctl_async.spec import JOB_KINDS

COALESCE_SECONDS = 0.2
HEARTBEAT_SECONDS = 25.0
FEED_SOCKETS = web.AppKey("job_feed_sockets", weakref.WeakSet)


@dataclass
class FeedStats:
    """Read by the metrics collector at scrape time."""

    frames_sent: int = 0
    coalesced: int = 0
    """Changes folded into a later one for the same job within a window (not sent)."""


FEED_STATS = web.AppKey("job_feed_stats", FeedStats)


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


def _matches(row: Row, filters: dict[str, str]) -> bool:
    return all((row.pool if key == "pool" else row.item.get(key)) == value
               for key, value in filters.items())


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
    await ws.prepare(request)

    async def readable() -> frozenset[str] | None | GpuctlError:
        """Where the caller may list pods now: re-asked before every batch, so a removed
        binding applies within the decision TTL (cached decisions make it free). A refusal
        (4403) or a failed check (1011, e.g. Kubernetes unreachable) closes the socket."""
        try:
            return await read_scope(request, LIST_PODS, filters.get("namespace"))
        except GpuctlError as exc:
            code = CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else WSCloseCode.INTERNAL_ERROR
            await ws.send_str(dumps({"type": "error", "data": exc.message}).decode())
            await ws.close(code=code, message=exc.message.encode()[:120])
            return exc

    within = await readable()
    if isinstance(within, GpuctlError):
        return ws
    request.app[FEED_SOCKETS].add(ws)

    pending: dict[tuple[str, str], tuple[str, Row]] = {}
    wake = asyncio.Event()
    stats = request.app[FEED_STATS]

    def on_change(event: str, row: Row) -> None:
        if not _matches(row, filters):
            return
        key = (row.item["namespace"], row.item["jobId"])
        earlier = pending.get(key)
        if earlier is not None:
            stats.coalesced += 1
            if earlier[0] == "ADDED" and event != "DELETED":
                event = "ADDED"  # the client has not heard of it yet
        pending[key] = (event, row)
        wake.set()

    async def send_changes() -> None:
        while True:
            await wake.wait()
            wake.clear()
            batch = list(pending.values())
            pending.clear()
            within = await readable()
            if isinstance(within, GpuctlError):
                return
            now = time.time()
            for event, row in batch:
                if within is None or row.item["namespace"] in within:
                    await ws.send_str(dumps({"type": event, "item": row.render(now)}).decode())
                    stats.frames_sent += 1
            await asyncio.sleep(COALESCE_SECONDS)  # the coalescing window, not a wait

    stop_listening = listing.listen(on_change)
    sender: asyncio.Task[None] | None = None
    try:
        snapshot = listing.items(within=within, **filters)
        await ws.send_str(dumps({"type": "snapshot", "items": snapshot}).decode())
        stats.frames_sent += 1
        sender = asyncio.create_task(send_changes())
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        stop_listening()
        if sender is not None:
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

"""``WS /api/v1/jobs/ws``: a live job list for dashboards.

The first frame is ``{"type": "snapshot", "items": [JobItem...]}``: what ``GET /api/v1/jobs``
would list with the same filters (with authentication on: the namespaces where the caller may
list pods, checked again before each batch of changes; a named namespace the caller may not
read gets an error frame and close code 4403). Then ``{"type": "ADDED"|"MODIFIED"|"DELETED", "item":
JobItem}`` as jobs change. Bursts are coalesced: a job's changes within one window are sent as
its latest state, so a client gets at most one frame per job per window. Pings keep idle
connections alive through proxies; on shutdown the socket closes with 1001 (going away).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp_apigami import docs, querystring_schema
from marshmallow import Schema, fields, validate

from gpuctl_async.api.job_views import JobItemSchema
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.responses import dumps
from gpuctl_async.appkeys import LISTING
from gpuctl_async.auth import SUBPROTOCOL
from gpuctl_async.auth.guard import CLOSE_FORBIDDEN, read_scope
from gpuctl_async.auth.permissions import LIST_PODS
from gpuctl_async.errors import Forbidden, GpuctlError
from gpuctl_async.jobs.listing import JobListing, Row
from gpuctl_async.spec import JOB_KINDS

COALESCE_SECONDS = 0.2
HEARTBEAT_SECONDS = 25.0
FEED_SOCKETS = web.AppKey("job_feed_sockets", weakref.WeakSet)


class FeedRouter:
    """One listener on the job listing for all feed sockets, handing each change only to the
    sockets whose ``namespace`` filter it matches (and to the unfiltered ones): 500
    dashboards of one namespace each then cost ten calls per change, not 500."""

    def __init__(self) -> None:
        self._by_namespace: dict[str | None, set[Callable[[str, Row], None]]] = {}
        self._stop: Callable[[], None] | None = None

    def add(self, listing: JobListing, namespace: str | None,
            callback: Callable[[str, Row], None]) -> Callable[[], None]:
        """Route changes to ``callback``; returns the function that stops it."""
        if self._stop is None:
            self._stop = listing.listen(self._dispatch)
        self._by_namespace.setdefault(namespace, set()).add(callback)

        def remove() -> None:
            callbacks = self._by_namespace.get(namespace)
            if callbacks is not None:
                callbacks.discard(callback)
                if not callbacks:
                    del self._by_namespace[namespace]
            if not self._by_namespace and self._stop is not None:
                self._stop()
                self._stop = None
        return remove

    def _dispatch(self, event: str, row: Row) -> None:
        for key in (row.item["namespace"], None):
            for callback in list(self._by_namespace.get(key, ())):
                callback(event, row)


FEED_ROUTER = web.AppKey("job_feed_router", FeedRouter)


class JobFeedQuerySchema(Schema):
    namespace = fields.String()
    kind = fields.String(validate=validate.OneOf(JOB_KINDS))
    pool = fields.String()


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
    listing.require_synced()  # a 503 must come before the upgrade
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, protocols=(SUBPROTOCOL,))
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

    def on_change(event: str, row: Row) -> None:
        if not _matches(row, filters):
            return
        key = (row.item["namespace"], row.item["jobId"])
        earlier = pending.get(key)
        if earlier is not None and earlier[0] == "ADDED" and event != "DELETED":
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
                    await ws.send_str(_frame(event, row, now))
            await asyncio.sleep(COALESCE_SECONDS)  # the coalescing window, not a wait

    stop_listening = request.app[FEED_ROUTER].add(listing, filters.get("namespace"), on_change)
    sender: asyncio.Task[None] | None = None
    try:
        snapshot = listing.items(within=within, **filters)
        await ws.send_str(dumps({"type": "snapshot", "items": snapshot}).decode())
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


def _frame(event: str, row: Row, now: float) -> str:
    """``{"type": event, "item": row}``, from the row's own encoding (made once per change and
    second, shared by every socket) rather than encoded again per socket."""
    return f'{{"type":"{event}","item":{row.encode(now).decode()}}}'


async def _close_feeds(app: web.Application) -> None:
    for ws in list(app[FEED_SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def setup_job_feed_routes(app: web.Application) -> None:
    app[FEED_SOCKETS] = weakref.WeakSet()
    app[FEED_ROUTER] = FeedRouter()
    app.on_shutdown.append(_close_feeds)
    app.router.add_get("/api/v1/jobs/ws", job_feed, allow_head=False)
